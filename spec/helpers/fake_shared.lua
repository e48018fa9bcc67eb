-- An in-memory stand-in for host.shared (get/set with TTL on a fake clock),
-- recording every set so specs can see what was cached and for how long.
local fake_shared = {}

function fake_shared.new(clock)
  clock = clock or { now = 0 }
  local entries, sets = {}, {}
  local store = { sets = sets, clock = clock }

  function store.set(key, value, ttl)
    assert(type(key) == "string" and type(value) == "string", "host.shared.set: strings only")
    entries[key] = { value = value, expires = ttl and (clock.now + ttl) or math.huge }
    sets[#sets + 1] = { key = key, value = value, ttl = ttl }
    return true
  end

  function store.get(key)
    local e = entries[key]
    if not e or e.expires <= clock.now then
      return nil
    end
    return e.value, e.expires - clock.now
  end

  function store.delete(key)
    local existed = entries[key] ~= nil
    entries[key] = nil
    return existed
  end

  return store
end

return fake_shared
