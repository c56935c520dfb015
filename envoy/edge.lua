-- The edge filter of envoy/envoy.yaml (envoy.filters.http.lua): what Envoy's
-- own filters cannot do for the public listener. It runs before the JSON
-- transcoder on every request and last on every response:
--
--   * refuses headers over 32 KiB or 100 with 431 (HTTP/1.1 and HTTP/2
--     alike), and a native gRPC compression the api_server lacks;
--   * drops request headers that gRPC forbids but HTTP allows (a name outside
--     [0-9a-z_.-], a "-bin" value that is not base64, a client's grpc-*
--     header the api_server would choke on), so the api_server never answers
--     INTERNAL "Illegal header key";
--   * names the rate-limit bucket of the request: the SHA-256 of its bearer
--     key (never the key itself), that of a signed link's signature (a
--     browser fetching a generated file sends no key), or "anonymous";
--   * drops members named "" from JSON bodies, as grpc-gateway drops unknown
--     fields (the transcoder refuses them: "Proto fields must have a name.");
--   * strips the grpc-* headers and trailers from responses to JSON clients.
--
-- The functions in the `edge` table are pure and are unit-tested outside
-- Envoy (tests/unit/test_edge_lua.py) with the same LuaJIT.

edge = {}

local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local lshift, rshift, ror, tobit, tohex = bit.lshift, bit.rshift, bit.ror, bit.tobit, bit.tohex

-- Dynamic metadata namespace shared with envoy.yaml's rate-limit action.
local METADATA = "leo.edge"

---------------------------------------------------------------------------
-- SHA-256 (FIPS 180-4): Envoy's Lua has no digest function.

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

-- Lowercase hex SHA-256 of a string shorter than 512 MiB.
function edge.sha256_hex(message)
  local bits = #message * 8
  message = message .. "\128" .. string.rep("\0", (55 - #message) % 64) .. "\0\0\0\0"
    .. string.char(band(rshift(bits, 24), 255), band(rshift(bits, 16), 255), band(rshift(bits, 8), 255), band(bits, 255))
  local h = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }
  local w = {}
  for block = 1, #message, 64 do
    for i = 0, 15 do
      local b1, b2, b3, b4 = message:byte(block + 4 * i, block + 4 * i + 3)
      w[i] = bor(lshift(b1, 24), lshift(b2, 16), lshift(b3, 8), b4)
    end
    for i = 16, 63 do
      local x, y = w[i - 15], w[i - 2]
      local s0 = bxor(ror(x, 7), ror(x, 18), rshift(x, 3))
      local s1 = bxor(ror(y, 17), ror(y, 19), rshift(y, 10))
      w[i] = tobit(w[i - 16] + s0 + w[i - 7] + s1)
    end
    local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
    for i = 0, 63 do
      local s1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
      local ch = bxor(band(e, f), band(bnot(e), g))
      local t1 = tobit(hh + s1 + ch + K[i + 1] + w[i])
      local s0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
      local maj = bxor(band(a, b), band(a, c), band(b, c))
      hh, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + s0 + maj)
    end
    h[1], h[2], h[3], h[4] = tobit(h[1] + a), tobit(h[2] + b), tobit(h[3] + c), tobit(h[4] + d)
    h[5], h[6], h[7], h[8] = tobit(h[5] + e), tobit(h[6] + f), tobit(h[7] + g), tobit(h[8] + hh)
  end
  local hex = {}
  for i = 1, 8 do
    hex[i] = tohex(h[i], 8)
  end
  return table.concat(hex)
end

---------------------------------------------------------------------------
-- Request headers as gRPC metadata.

-- The compressions the api_server's grpc library decodes.
local GRPC_ENCODINGS = { identity = true, gzip = true, deflate = true }

local BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- Whether a -bin value decodes as base64 the way the gRPC library reads it:
-- the standard alphabet, padding optional, never a lone sixth of a byte,
-- and the bits past the last whole byte all zero.
function edge.is_base64(value)
  local data = value:match("^([A-Za-z0-9+/]*)=?=?$")
  if data == nil then
    return false
  end
  local tail = #data % 4
  if tail == 0 then
    return true
  end
  if tail == 1 then
    return false
  end
  -- Two characters carry a byte and 4 spare bits, three carry two bytes and 2.
  local last = BASE64:find(data:sub(-1), 1, true) - 1
  return last % (tail == 2 and 16 or 4) == 0
end

-- Why the api_server would refuse the request header `name: value` (a
-- string), or nil when it is fine to forward. `grpc` tells a native gRPC
-- request from a JSON one.
function edge.header_problem(name, value, grpc)
  if not name:match("^[0-9a-z_.%-]+$") then
    return "gRPC metadata names are [0-9a-z_.-]"
  end
  if name:sub(-4) == "-bin" and not edge.is_base64(value) then
    return "a -bin value must be base64"
  end
  if name:sub(1, 5) ~= "grpc-" then
    return nil
  end
  -- gRPC's own headers: only the ones a client may set, with values its
  -- library parses; the rest (grpc-previous-rpc-attempts, grpc-trace-bin,
  -- grpc-status, ...) are not a client's to send through the edge.
  if name == "grpc-timeout" then
    if value:match("^%d%d?%d?%d?%d?%d?%d?%d?[HMSmun]$") then
      return nil
    end
    return "grpc-timeout is 1 to 8 digits and a unit (H, M, S, m, u, n)"
  end
  if grpc and name == "grpc-accept-encoding" then
    return nil
  end
  if grpc and name == "grpc-encoding" and GRPC_ENCODINGS[value] then
    return nil
  end
  return "reserved gRPC header"
end

---------------------------------------------------------------------------
-- Rate-limit bucket.

-- The signature of a signed link to a generated file, from the request's
-- :path, or nil. The api_server checks it; here it only names a bucket.
function edge.link_signature(path)
  if path == nil or not path:match("^/v1/generations/[^/?]+/assets/[^/?]+%?") then
    return nil
  end
  local query = path:match("%?(.*)$")
  for pair in query:gmatch("[^&]+") do
    local value = pair:match("^signature=(.+)$")
    if value ~= nil then
      return value
    end
  end
  return nil
end

-- The bucket of a request: its authorization header value as the
-- api_server reads it (scheme "Bearer" in any case, the key after the first
-- space, trimmed), hashed; without a key, a signed link's signature, hashed
-- ("link-" first); anything else is "anonymous". Like made-up keys, made-up
-- signatures get buckets of their own, and the listener's bucket bounds them all.
function edge.rate_limit_bucket(authorization, path)
  local scheme, rest
  if authorization ~= nil then
    scheme, rest = authorization:match("^([^ ]*) (.*)$")
  end
  local key = rest and rest:match("^%s*(.-)%s*$")
  if scheme ~= nil and scheme:lower() == "bearer" and key ~= "" then
    return edge.sha256_hex(key)
  end
  local signature = edge.link_signature(path)
  if signature ~= nil then
    return "link-" .. edge.sha256_hex(signature)
  end
  return "anonymous"
end

---------------------------------------------------------------------------
-- JSON members named "".

-- Deeper than this, the text is left alone (the transcoder's parser refuses
-- such nesting anyway).
local MAX_DEPTH = 100

local skip_value

local function skip_space(text, i)
  return text:find("[^ \t\r\n]", i) or #text + 1
end

-- The index after the string that starts (with its quote) at i, or nil.
local function skip_string(text, i)
  local j = i + 1
  while true do
    local k = text:find('["\\]', j)
    if k == nil then
      return nil
    end
    if text:byte(k) == 34 then -- '"'
      return k + 1
    end
    j = k + 2 -- past a backslash and the character it escapes
  end
end

-- Parses the value at i (after white space); returns the index after it and
-- its text without white space between tokens and without "" members, or
-- nil when the text is not JSON there.
skip_value = function(text, i, depth)
  i = skip_space(text, i)
  local c = text:sub(i, i)
  if c == '"' then
    local j = skip_string(text, i)
    return j, j and text:sub(i, j - 1)
  end
  if c == "{" or c == "[" then
    if depth >= MAX_DEPTH then
      return nil
    end
    local close = c == "{" and "}" or "]"
    local kept = {}
    i = skip_space(text, i + 1)
    if text:sub(i, i) == close then
      return i + 1, c .. close
    end
    while true do
      local member
      if c == "{" then
        if text:sub(i, i) ~= '"' then
          return nil
        end
        local j = skip_string(text, i)
        if j == nil then
          return nil
        end
        local name = text:sub(i, j - 1)
        j = skip_space(text, j)
        if text:sub(j, j) ~= ":" then
          return nil
        end
        local value
        i, value = skip_value(text, j + 1, depth + 1)
        if i == nil then
          return nil
        end
        if name ~= '""' then
          member = name .. ":" .. value
        end
      else
        i, member = skip_value(text, i, depth + 1)
        if i == nil then
          return nil
        end
      end
      kept[#kept + 1] = member
      i = skip_space(text, i)
      local sep = text:sub(i, i)
      if sep == close then
        return i + 1, c .. table.concat(kept, ",") .. close
      end
      if sep ~= "," then
        return nil
      end
      i = skip_space(text, i + 1)
    end
  end
  -- A number, true, false or null: the transcoder checks its spelling.
  local j = text:find("[^%w%.%+%-]", i) or #text + 1
  if j == i then
    return nil
  end
  return j, text:sub(i, j - 1)
end

-- The JSON text without the object members named "" at any depth, or nil
-- when it has none or is not JSON (then the transcoder gets it unchanged).
function edge.drop_empty_names(text)
  if not text:find('""%s*:') then
    return nil
  end
  local i, stripped = skip_value(text, 1, 0)
  if i == nil or skip_space(text, i) <= #text then
    return nil
  end
  return stripped
end

---------------------------------------------------------------------------
-- Envoy entry points.

-- More header bytes (names and values, as Envoy counts them) or more
-- headers than this are refused here with 431, so that HTTP/2 clients get
-- the JSON error too: beyond Envoy's own, higher, limits
-- (max_request_headers_kb, max_headers_count) an HTTP/2 stream is reset.
-- The gRPC servers accept 64 KiB of metadata (leo_mesh/grpc_server.py).
edge.MAX_HEADER_BYTES = 32 * 1024
edge.MAX_HEADERS = 100

local function is_grpc(headers)
  local content_type = headers:get("content-type")
  return content_type ~= nil and content_type:sub(1, 16) == "application/grpc"
end

-- Ends the request with an error: a local reply that envoy.yaml's
-- local_reply_config turns into JSON, or a trailers-only gRPC status.
local function refuse(handle, grpc, http_status, grpc_code, message)
  if grpc then
    handle:respond({
      [":status"] = "200",
      ["content-type"] = "application/grpc",
      ["grpc-status"] = tostring(grpc_code),
      ["grpc-message"] = message,
    }, "")
  else
    handle:respond({ [":status"] = tostring(http_status) }, message)
  end
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local grpc = is_grpc(headers)
  local metadata = handle:streamInfo():dynamicMetadata()

  local bytes, count, dropped = 0, 0, {}
  for name, value in pairs(headers) do
    bytes = bytes + #name + #value
    if name:sub(1, 1) ~= ":" then
      count = count + 1
      if edge.header_problem(name, value, grpc) then
        dropped[#dropped + 1] = name
      end
    end
  end
  if bytes > edge.MAX_HEADER_BYTES or count > edge.MAX_HEADERS then
    return refuse(handle, grpc, 431, 3, "Request Header Fields Too Large")
  end
  local encoding = headers:get("grpc-encoding")
  if grpc and encoding ~= nil and not GRPC_ENCODINGS[encoding] then
    -- UNIMPLEMENTED, as the gRPC specification answers a compression the
    -- server does not have (the api_server would answer INTERNAL).
    return refuse(handle, grpc, nil, 12, "grpc-encoding must be identity, gzip or deflate")
  end
  for _, name in ipairs(dropped) do
    headers:remove(name)
  end

  -- (Envoy joins repeated authorization headers into one value, as the
  -- api_server then reads it.)
  metadata:set(
    METADATA,
    "rate_limit_bucket",
    edge.rate_limit_bucket(headers:get("authorization"), headers:get(":path"))
  )

  if grpc then
    return
  end
  metadata:set(METADATA, "json_client", true)
  local body = handle:body()
  if body ~= nil and body:length() > 0 then
    local stripped = edge.drop_empty_names(body:getBytes(0, body:length()))
    if stripped ~= nil then
      body:setBytes(stripped)
      headers:replace("content-length", tostring(#stripped))
    end
  end
end

local function drop_grpc_headers(headers)
  local names = {}
  for name, _ in pairs(headers) do
    if name:sub(1, 5) == "grpc-" then
      names[#names + 1] = name
    end
  end
  for _, name in ipairs(names) do
    headers:remove(name)
  end
end

-- A JSON client gets no grpc-* header or trailer (grpc-status,
-- grpc-message, grpc-accept-encoding, ...). Waiting for the trailers does
-- not hold the body back: a watch's events still flow as they come.
function envoy_on_response(handle)
  local state = handle:streamInfo():dynamicMetadata():get(METADATA)
  if state == nil or not state.json_client then
    return
  end
  drop_grpc_headers(handle:headers())
  local trailers = handle:trailers()
  if trailers ~= nil then
    drop_grpc_headers(trailers)
  end
end
