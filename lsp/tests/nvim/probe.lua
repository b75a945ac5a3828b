-- Drives `medic lsp` from a real Neovim (0.7+), headless. Inputs come from environment
-- variables; results are written as JSON to $PROBE_OUT. Run by lsp/tests/lsp/neovim.rs.
local out = os.getenv("PROBE_OUT")
local function finish(result)
  local file = io.open(out, "w")
  file:write(vim.fn.json_encode(result))
  file:close()
  vim.cmd("qa!")
end

local client_id = vim.lsp.start_client({
  cmd = { os.getenv("MEDIC_BIN"), "lsp" },
  root_dir = os.getenv("PROBE_ROOT"),
  name = "medic",
})
if client_id == nil then
  finish({ error = "could not start medic lsp" })
end
vim.cmd("edit " .. os.getenv("PROBE_FILE"))
vim.bo.filetype = "ops"
vim.lsp.buf_attach_client(0, client_id)

local ok = vim.wait(20000, function() return #vim.diagnostic.get(0) > 0 end, 50)
local result = { diagnostics = {} }
if not ok then
  result.error = "no diagnostics within 20 s"
end
for _, diagnostic in ipairs(vim.diagnostic.get(0)) do
  table.insert(result.diagnostics, {
    line = diagnostic.lnum,
    col = diagnostic.col,
    message = diagnostic.message,
    code = diagnostic.code,
  })
end

local uri = vim.uri_from_bufnr(0)
local function request(method, line, col)
  local params = { textDocument = { uri = uri }, position = { line = line, character = col } }
  local responses = vim.lsp.buf_request_sync(0, method, params, 10000) or {}
  for _, response in pairs(responses) do
    if response.result then
      return response.result
    end
  end
  return vim.NIL
end

result.hover = request("textDocument/hover", tonumber(os.getenv("HOVER_LINE")), tonumber(os.getenv("HOVER_COL")))
result.definition = request("textDocument/definition", tonumber(os.getenv("DEF_LINE")), tonumber(os.getenv("DEF_COL")))
finish(result)
