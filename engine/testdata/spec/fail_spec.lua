-- Fails on purpose: engine/spec_test.go checks every line the runner prints.
describe("failures", function()
  it("reports an assertion at its line", function()
    assert.are.equal(1, 2)
  end)

  it("quotes strings", function()
    assert.are.equal("1", 1)
  end)

  it("reports a custom message", function()
    assert.is_true(false, "the flag")
  end)

  it("shows where tables differ", function()
    assert.are.same({ a = { 1, 2 } }, { a = { 1, 3 } })
  end)

  it("reports an error with a traceback", function()
    local t = nil
    local function helper()
      return t.field
    end
    helper()
  end)

  it("positions errors raised without one", function()
    error({ code = 7 })
  end)

  it("fails a has_error that got none", function()
    assert.has_error(function() end, "boom")
  end)

  it("fails a negated assertion", function()
    assert.is_not.equal(3, 3)
  end)

  it("passes", function()
    assert.truthy(true)
  end)

  pending("counts pending apart")
end)

describe("a failing before_each", function()
  before_each(function()
    error("setup broke", 0)
  end)

  it("fails the test it guards", function()
    assert.truthy(true)
  end)
end)

describe("a failing describe body", function()
  it("is still defined", function() end)
  local x = nil
  x.y = 1
end)

describe("a failing setup", function()
  setup(function()
    error("no fixture", 0)
  end)

  it("fails every test below it", function() end)
  pending("but keeps pending ones pending")
end)

describe("a failing teardown", function()
  teardown(function()
    error("cleanup broke")
  end)

  it("passes on its own", function() end)
end)

describe("misuse", function()
  it("names an unknown assertion", function()
    assert.is_bogus(1)
  end)
end)

it("takes a function", "not a function")
