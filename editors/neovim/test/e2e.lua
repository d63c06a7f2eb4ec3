-- Headless Neovim end to end: open a project's manifest with the lex_align
-- plugin and the real `lex-align lsp`, wait for the `banned` diagnostic,
-- apply the quick fix, and check that the diagnostic clears.
--
-- Run by test/e2e.sh, which sets:
--   E2E_BIN      the lex-align binary (runs `<bin> lsp`)
--   E2E_FILE     absolute path of the manifest to open
--   E2E_RESULT   where to write the JSON result
--   E2E_TIMEOUT_MS  overall budget for this script
--   E2E_PACKAGE  (optional) the banned package expected
--   E2E_LINE     (optional) its 1-based line
--   E2E_SETTLE_MS  how long the cleared state must hold (stale results)
--   E2E_DEBOUNCE_MS  lexAlign.debounceMs for the session
--   E2E_NATIVE   "0" forces the vim.lsp.start path on Neovim 0.11+
-- Uses only APIs present in Neovim 0.7 (Debian 12's neovim).

local env = vim.env
local started = vim.loop.hrtime()
local budget_ms = tonumber(env.E2E_TIMEOUT_MS or '') or 60000
local settle_ms = tonumber(env.E2E_SETTLE_MS or '') or 1500

local v = vim.version()
local result = {
  ok = false,
  nvim = string.format('%d.%d.%d', v.major, v.minor, v.patch),
  file = env.E2E_FILE,
  bin = env.E2E_BIN,
  expected = { package = env.E2E_PACKAGE or vim.NIL, line = tonumber(env.E2E_LINE or '') or vim.NIL },
  steps = {},
  messages = {},
}

local function elapsed_ms()
  return math.floor((vim.loop.hrtime() - started) / 1e6)
end

local function remaining_ms()
  return math.max(0, budget_ms - elapsed_ms())
end

local function step(name, data)
  local s = data or {}
  s.name = name
  s.at_ms = elapsed_ms()
  table.insert(result.steps, s)
end

local function write_result()
  local path = env.E2E_RESULT
  if path == nil or path == '' then
    return
  end
  local f = io.open(path, 'w')
  if f then
    f:write(vim.json.encode(result))
    f:write('\n')
    f:close()
  end
end

local Failure = {}

local function fail(msg, data)
  error(setmetatable({ msg = msg, data = data }, Failure), 0)
end

-- Keep what the server shows the user (window/showMessage ends in vim.notify).
local orig_notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(result.messages, { level = level, message = tostring(msg) })
  return orig_notify(msg, level, opts)
end

local exited = nil

local function lex_clients(bufnr)
  local out = {}
  local all
  if type(vim.lsp.get_clients) == 'function' then
    all = vim.lsp.get_clients({ bufnr = bufnr })
  else
    all = vim.lsp.buf_get_clients(bufnr)
  end
  for _, c in pairs(all) do
    if c.name == 'lex_align' then
      out[#out + 1] = c
    end
  end
  return out
end

local function lex_diagnostics(bufnr)
  local out = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    if d.source == 'lex-align' then
      out[#out + 1] = d
    end
  end
  table.sort(out, function(a, b)
    return a.lnum < b.lnum or (a.lnum == b.lnum and a.col < b.col)
  end)
  return out
end

local function describe(bufnr, diags)
  local out = {}
  for _, d in ipairs(diags) do
    local line = vim.api.nvim_buf_get_lines(bufnr, d.lnum, d.lnum + 1, false)[1] or ''
    out[#out + 1] = {
      line = d.lnum + 1,
      col = d.col + 1,
      end_line = (d.end_lnum or d.lnum) + 1,
      end_col = (d.end_col or d.col) + 1,
      code = d.code,
      severity = d.severity,
      message = d.message,
      text = line:sub(d.col + 1, (d.end_lnum == d.lnum and d.end_col) or #line),
    }
  end
  return out
end

local function diag_package(d)
  local lsp = d.user_data and d.user_data.lsp
  local data = lsp and lsp.data
  return type(data) == 'table' and data.package or nil
end

-- PEP 503 normalisation, so "Requests_OAuth" matches "requests-oauth".
local function canonical(name)
  return (name or ''):lower():gsub('[-_.]+', '-')
end

-- Whether a banned diagnostic is the one this run expects.
local function is_target(bufnr, d)
  if d.code ~= 'banned' then
    return false
  end
  local want_line = result.expected.line
  if want_line ~= vim.NIL and d.lnum + 1 ~= want_line then
    return false
  end
  local want = result.expected.package
  if want ~= vim.NIL and want ~= '' then
    local pkg = diag_package(d)
    if pkg then
      return canonical(pkg) == canonical(want)
    end
    local line = vim.api.nvim_buf_get_lines(bufnr, d.lnum, d.lnum + 1, false)[1] or ''
    return canonical(line):find(canonical(want), 1, true) ~= nil
  end
  return true
end

local function wait_for(what, cond)
  local value
  local ok = vim.wait(remaining_ms(), function()
    if exited then
      return true
    end
    value = cond()
    return value ~= nil and value ~= false
  end, 50)
  if exited then
    fail(string.format('lex-align lsp exited (code %s, signal %s) while waiting for %s', tostring(exited.code), tostring(exited.signal), what))
  end
  if not ok then
    fail('timed out waiting for ' .. what)
  end
  return value
end

-- Byte column -> the client's position encoding.
local function to_lsp_col(bufnr, lnum, col, encoding)
  if encoding == 'utf-8' then
    return col
  end
  local line = vim.api.nvim_buf_get_lines(bufnr, lnum, lnum + 1, false)[1] or ''
  col = math.min(col, #line)
  local utf32, utf16 = vim.str_utfindex(line, col)
  if encoding == 'utf-32' then
    return utf32
  end
  return utf16
end

local function lsp_diagnostic(bufnr, d, encoding)
  local lsp = (d.user_data and d.user_data.lsp) or {}
  local range = lsp.range
  if range == nil then
    range = {
      start = { line = d.lnum, character = to_lsp_col(bufnr, d.lnum, d.col, encoding) },
      ['end'] = {
        line = d.end_lnum or d.lnum,
        character = to_lsp_col(bufnr, d.end_lnum or d.lnum, d.end_col or d.col, encoding),
      },
    }
  end
  return {
    range = range,
    severity = lsp.severity or d.severity,
    code = d.code,
    source = d.source,
    message = d.message,
    codeDescription = lsp.codeDescription,
    data = lsp.data,
  }
end

local function pick_action(actions)
  local quickfix
  for _, a in ipairs(actions) do
    -- A bare Command has `command` as a string; CodeActions carry kind/edit.
    if type(a.command) ~= 'string' then
      if a.edit and a.title:match('^Replace .+ with .+') then
        return a
      end
      if quickfix == nil and a.edit and (a.kind == nil or a.kind == 'quickfix' or a.kind:match('^quickfix%.')) then
        quickfix = a
      end
    end
  end
  return quickfix
end

local function main()
  local bin, file = env.E2E_BIN, env.E2E_FILE
  if bin == nil or bin == '' or file == nil or file == '' then
    fail('E2E_BIN and E2E_FILE must be set (run test/e2e.sh)')
  end

  vim.cmd('filetype on')
  local lex = require('lex_align')
  lex.setup({
    cmd = { bin, 'lsp' },
    use_native = env.E2E_NATIVE ~= '0',
    settings = { lexAlign = { debounceMs = tonumber(env.E2E_DEBOUNCE_MS or '') or 50 } },
    on_exit = function(code, signal)
      exited = { code = code, signal = signal }
    end,
  })
  step('setup', { native = vim.lsp.config ~= nil and env.E2E_NATIVE ~= '0' })

  vim.cmd('edit ' .. vim.fn.fnameescape(file))
  local bufnr = vim.api.nvim_get_current_buf()
  step('opened', { bufnr = bufnr, filetype = vim.bo[bufnr].filetype })

  local client = wait_for('the lex_align client to attach', function()
    return lex_clients(bufnr)[1]
  end)
  step('attached', { client_id = client.id })
  -- The encoding is settled by the initialize answer.
  wait_for('the server to initialize', function()
    return client.initialized or (client.server_capabilities ~= nil and next(client.server_capabilities) ~= nil)
      or client.resolved_capabilities ~= nil and next(client.resolved_capabilities) ~= nil
  end)
  local encoding = client.offset_encoding or 'utf-16'
  step('initialized', { offset_encoding = encoding })

  local target
  local ok_banned = pcall(function()
    target = wait_for('a banned diagnostic', function()
      for _, d in ipairs(lex_diagnostics(bufnr)) do
        if is_target(bufnr, d) then
          return d
        end
      end
    end)
  end)
  local before = describe(bufnr, lex_diagnostics(bufnr))
  result.diagnostics_before = before
  if not ok_banned then
    fail('no matching banned diagnostic from lex-align', { diagnostics = before })
  end
  result.banned = describe(bufnr, { target })[1]
  step('banned', vim.deepcopy(result.banned))

  local line_no = target.lnum
  local line_before = vim.api.nvim_buf_get_lines(bufnr, line_no, line_no + 1, false)[1]
  local lsp_diag = lsp_diagnostic(bufnr, target, encoding)
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    range = lsp_diag.range,
    context = { diagnostics = { lsp_diag }, only = { 'quickfix' } },
  }
  local responses, err = vim.lsp.buf_request_sync(bufnr, 'textDocument/codeAction', params, math.max(1, remaining_ms()))
  if responses == nil then
    fail('textDocument/codeAction failed: ' .. tostring(err))
  end
  local actions = {}
  for id, resp in pairs(responses) do
    if id == client.id then
      if resp.error then
        fail('textDocument/codeAction error: ' .. vim.inspect(resp.error))
      end
      actions = resp.result or {}
    end
  end
  local titles = {}
  for _, a in ipairs(actions) do
    titles[#titles + 1] = a.title
  end
  result.code_actions = titles
  step('code_actions', { titles = titles })

  local action = pick_action(actions)
  if action == nil then
    fail('lex-align offered no quick fix with an edit for the banned diagnostic', { titles = titles })
  end
  result.applied = action.title
  vim.lsp.util.apply_workspace_edit(action.edit, encoding)
  if type(action.command) == 'table' then
    client.request('workspace/executeCommand', action.command, function() end, bufnr)
  end
  local line_after = vim.api.nvim_buf_get_lines(bufnr, line_no, line_no + 1, false)[1]
  result.line_before, result.line_after = line_before, line_after
  step('applied', { title = action.title, line_before = line_before, line_after = line_after })
  if line_after == line_before then
    fail('the code action changed nothing on line ' .. (line_no + 1))
  end

  local function banned_left()
    for _, d in ipairs(lex_diagnostics(bufnr)) do
      if d.code == 'banned' and (d.lnum == line_no or is_target(bufnr, d)) then
        return d
      end
    end
    return nil
  end
  local ok_cleared = pcall(wait_for, 'the banned diagnostic to clear', function()
    return banned_left() == nil
  end)
  if not ok_cleared then
    fail('the banned diagnostic did not clear after the fix', { diagnostics = describe(bufnr, lex_diagnostics(bufnr)) })
  end
  step('cleared')

  -- A late publish computed for the old text would bring it back.
  local settle_until = elapsed_ms() + math.min(settle_ms, remaining_ms())
  local back
  vim.wait(math.max(0, settle_until - elapsed_ms()), function()
    back = banned_left()
    return back ~= nil or exited ~= nil
  end, 50)
  result.diagnostics_after = describe(bufnr, lex_diagnostics(bufnr))
  if back then
    fail('the banned diagnostic came back after it had cleared (stale result)', { diagnostic = describe(bufnr, { back })[1] })
  end
  if exited then
    fail(string.format('lex-align lsp exited (code %s) after the fix', tostring(exited.code)))
  end
  step('settled')
  result.ok = true
end

local ok, err = xpcall(main, function(e)
  if getmetatable(e) == Failure then
    return e
  end
  return { msg = debug.traceback(tostring(e), 2) }
end)
result.elapsed_ms = elapsed_ms()
if not ok then
  result.ok = false
  result.error = err.msg
  result.error_data = err.data
  io.stderr:write('e2e: FAIL: ' .. tostring(err.msg) .. '\n')
else
  io.stderr:write('e2e: PASS: applied "' .. tostring(result.applied) .. '"\n')
end
write_result()

-- Stop the client so `lex-align lsp` sees a clean shutdown before we leave.
local ids = {}
for _, c in ipairs(require('lex_align').clients()) do
  ids[#ids + 1] = c.id
end
if #ids > 0 then
  vim.lsp.stop_client(ids)
  vim.wait(2000, function()
    return #require('lex_align').clients() == 0
  end, 50)
end
vim.cmd(result.ok and 'qall!' or 'cquit 1')
