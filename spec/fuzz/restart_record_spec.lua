-- Regressions found by fuzzing (fuzz/regressions/k8s_response): Leases and
-- Nodes come from the API as decoded JSON; fields of the wrong type read as
-- absent instead of raising.
local restart_record = require("infraops.restart_record")

local PHASE = "infraops.michael.io/phase"

local function parse_time()
  return 1700000000
end

describe("fuzz regressions: restart_record", function()
  it("reads no record from a Lease whose annotations, metadata or spec have the wrong type", function()
    for _, lease in ipairs({ true, 5, { metadata = 5 }, { metadata = { annotations = 5 } },
      { metadata = { annotations = { [PHASE] = 7 } } } }) do
      assert.is_nil(restart_record.from_lease(lease))
    end
    local record = restart_record.from_lease({ metadata = { annotations = { [PHASE] = "Requested",
      ["infraops.michael.io/requested-at"] = 12 } }, spec = "x" })
    assert.are.equal("Requested", record.phase)
    assert.is_nil(record.requested_at)
    assert.is_nil(record.holder)
  end)

  it("derives a phase from a Node whose status, nodeInfo or conditions have the wrong type", function()
    local record = { phase = "Requested", boot_id = "b-0", requested_at = "2023-11-14T22:00:00Z" }
    for _, node in ipairs({ 5, { status = 5 }, { status = { nodeInfo = 5 } },
      { status = { nodeInfo = { bootID = "b-1" }, conditions = 5 } },
      { status = { nodeInfo = { bootID = "b-1" }, conditions = { 5, "x" } } } }) do
      assert.are.equal("Requested", restart_record.phase(record, node, 1700000100, 900, parse_time))
    end
  end)
end)
