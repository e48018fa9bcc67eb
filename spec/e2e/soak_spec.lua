-- End to end: the load soak, short. The same code as hack/soak.sh (hack/soak.lua):
-- mixed discovery, list, get and restart traffic (64 connections; 32 against a
-- sanitizer build) with cloud and kube-apiserver faults rotating between
-- rounds, for SOAK_DURATION (default 45 s, about a minute in all). Every
-- invariant the soak checks must hold; the figures are asserted only where
-- they show that each part ran.
local shell = require("spec.helpers.shell")
local soak = require("hack.soak")

describe("the load soak, short", function()
  it("answers every request, accounts every restart exactly once, leaks nothing", function()
    local duration = soak.parse_duration(os.getenv("SOAK_DURATION") or "45s")
    assert.is_number(duration, "SOAK_DURATION: want e.g. 45s or 2m")
    local dir = shell.temp_dir()
    local out = assert(io.open(dir .. "/report.txt", "w"))
    local ok, report = pcall(soak.run, { duration = duration, out = out })
    out:close()
    local text = shell.read_file(dir .. "/report.txt") or ""
    shell.remove_tree(dir)
    assert.is_true(ok, tostring(report) .. "\n" .. text)

    assert.same({}, report.failures, text)
    assert.is_true(report.ok, text)
    -- Each part ran: a warm-up and at least two rounds with faults, every kind of request answered.
    assert.is_true(report.rounds >= 3, text)
    for _, kind in ipairs({ "discovery", "list", "get" }) do
      assert.is_true((report.totals[kind] or {})[200] > 0, kind .. "\n" .. text)
    end
    assert.is_true((report.totals.restart[202] or 0) > 0, text)
    assert.is_true((report.totals.restart[409] or 0) > 0, text)          -- repeats and races inside the cooldown
    assert.is_true((report.totals.restart[504] or 0) > 0, text)          -- answers the cloud lost
    assert.is_true((report.reboots.aws or 0) > 0 and (report.reboots.tc or 0) > 0, text)
    assert.is_true(report.lost_answers > 0, text)                        -- rebooted, answer lost, 504, counted once
    assert.equal(0, report.transport_errors, text)
    assert.is_true(#report.rss >= 2, text)
    assert.equal(0, report.exit_code, text)
  end)
end)
