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
--   * refuses a header value that is not UTF-8 (gRPC's Python library would
--     log it whole, an API key included): 401 for authorization, else 400;
--   * drops the query parameters of a JSON request that grpc-gateway would
--     not bind (a field the path or the body carries) and refuses a field
--     named twice (400), so the api_server reads what the path says and
--     a link's bucket is the signature it checks;
--   * keeps the request's URL without its query for the trace's http.url;
--   * names the rate-limit bucket of the request: the SHA-256 of its bearer
--     key (never the key itself), that of a signed link's signature (a
--     browser fetching a generated file sends no key), or "anonymous";
--   * drops members named "" from JSON bodies, as grpc-gateway drops unknown
--     fields (the transcoder refuses them: "Proto fields must have a name.");
--   * strips the grpc-* headers and trailers from responses to JSON clients;
--   * makes the watch's server-sent events what a browser's EventSource
--     expects: an `id:` (the message's eventId) and a `retry:` line on each
--     event, Cache-Control: no-cache, and 204 for a watch resumed after its
--     final event (api_server/watch_events.py), which tells an EventSource
--     to stop reconnecting.
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

-- Whether a string is UTF-8 as RFC 3629 has it (no overlong forms, no
-- surrogates, nothing past U+10FFFF): what gRPC's Python library decodes
-- a metadata value as. It logs any other value whole, at ERROR, and reads
-- it as Latin-1.
function edge.is_utf8(value)
  if not value:find("[\128-\255]") then
    return true
  end
  local i, n = 1, #value
  while i <= n do
    local c = value:byte(i)
    if c < 0x80 then
      i = i + 1
    else
      local length, low, high = nil, 0x80, 0xBF
      if c >= 0xC2 and c <= 0xDF then
        length = 2
      elseif c >= 0xE0 and c <= 0xEF then
        length = 3
        low = c == 0xE0 and 0xA0 or 0x80 -- overlong
        high = c == 0xED and 0x9F or 0xBF -- surrogates
      elseif c >= 0xF0 and c <= 0xF4 then
        length = 4
        low = c == 0xF0 and 0x90 or 0x80 -- overlong
        high = c == 0xF4 and 0x8F or 0xBF -- past U+10FFFF
      else
        return false
      end
      local second = value:byte(i + 1)
      if second == nil or second < low or second > high then
        return false
      end
      for j = i + 2, i + length - 1 do
        local continuation = value:byte(j)
        if continuation == nil or continuation < 0x80 or continuation > 0xBF then
          return false
        end
      end
      i = i + length
    end
  end
  return true
end

-- The answer to a request whose header `name: value` (one gRPC would
-- carry) is not UTF-8: HTTP status, gRPC code and message; nil when it is.
-- The request is refused rather than sent on without the header: the
-- header may be one the api_server reads (a key, an Idempotency-Key).
function edge.header_refusal(name, value)
  if edge.is_utf8(value) then
    return nil
  end
  if name == "authorization" then
    return 401, 16, "a valid API key is required: Authorization: Bearer <key> (this one is not UTF-8)"
  end
  return 400, 3, "header " .. name .. ": the value must be UTF-8"
end

---------------------------------------------------------------------------
-- Query parameters of JSON requests.

-- By HTTP method, each query parameter name the transcoder binds to a
-- field of some route's request (proto and JSON spelling): false when
-- grpc-gateway would not bind it (the field is a path variable, or the
-- route's body is "*"), else the field's name. Rendered from the protos'
-- google.api.http rules by leo_mesh/envoy_config.py, which appends it
-- to this script and refuses rules for which one table per method is wrong.
edge.QUERY_FIELDS = {}

-- A query name or value as the transcoder reads it: '+' is a space
-- (query_param_unescape_plus), then each %XX is its byte.
function edge.unescape(text)
  text = text:gsub("%+", " ")
  return (text:gsub("%%(%x%x)", function(hex)
    return string.char(tonumber(hex, 16))
  end))
end

-- Checks a JSON request's query (the text after '?') against `fields`
-- (edge.QUERY_FIELDS of its method). Returns the query without the
-- parameters grpc-gateway would not bind (nil when none was dropped); the
-- refusal of a field given more than once (grpc-gateway's 400), or nil;
-- and the value of each field given, by field name.
function edge.check_query(fields, query)
  local kept, counts, values, dropped = {}, {}, {}, false
  for pair in query:gmatch("[^&]+") do
    local raw_name, raw_value = pair:match("^([^=]*)=?(.*)$")
    local name = edge.unescape(raw_name)
    -- "a.b" names a sub-field of a: bound, or not, with a.
    local field = fields and fields[name:match("^[^.]*")]
    if field == false then
      dropped = true
    else
      kept[#kept + 1] = pair
      if field ~= nil and field == fields[name] then
        counts[field] = (counts[field] or 0) + 1
        if counts[field] > 1 then
          return nil, 'too many values for field "' .. field .. '"', values
        end
        values[field] = edge.unescape(raw_value)
      end
    end
  end
  return dropped and table.concat(kept, "&") or nil, nil, values
end

---------------------------------------------------------------------------
-- Rate-limit bucket.

-- The key of an authorization header value as the api_server reads it
-- (api_server/auth.py): scheme "Bearer" in any case, a space, then one
-- RFC 6750 b64token, spaces and tabs around it; nil for anything else.
function edge.bearer_key(authorization)
  if authorization == nil then
    return nil
  end
  local scheme, key = authorization:match("^(%a+) [ \t]*([A-Za-z0-9%._~%+/%-]+=*)[ \t]*$")
  if scheme ~= nil and scheme:lower() == "bearer" then
    return key
  end
  return nil
end

-- The bucket of a request: its bearer key, hashed; without one, a signed
-- link's signature (the value the api_server checks), hashed ("link-"
-- first); anything else is "anonymous". Like made-up keys, made-up
-- signatures get buckets of their own, and the listener's bucket bounds them all.
function edge.rate_limit_bucket(authorization, signature)
  local key = edge.bearer_key(authorization)
  if key ~= nil then
    return edge.sha256_hex(key)
  end
  if signature ~= nil and signature ~= "" then
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
-- Server-sent events (WatchGeneration over HTTP).

-- How long an EventSource waits before it reconnects after the stream
-- dropped (the `retry:` field), in milliseconds.
edge.SSE_RETRY_MS = 2000
-- The initial metadata of a watch resumed after its final event: nothing
-- more will come (api_server/watch_events.py's ENDED_HEADER).
edge.WATCH_ENDED_HEADER = "leo-watch-ended"

-- The complete events at the start of `text`, as the transcoder writes
-- them ("data: {json}" and a blank line per message, the JSON on one line
-- with the message's eventId last), each with a "retry:" line and, when
-- its message has an eventId, an "id:" line before its data. Returns those
-- events and the text after them (an event not complete yet, which the
-- next chunk of the body continues).
function edge.sse_fields(text)
  local events, start = {}, 1
  while true do
    local stop = text:find("\n\n", start, true)
    if stop == nil then
      break
    end
    local event = text:sub(start, stop + 1)
    local fields = "retry: " .. edge.SSE_RETRY_MS .. "\n"
    local id = event:match('"eventId":"([%w_%-]+)"}\n\n$')
    if id ~= nil then
      fields = fields .. "id: " .. id .. "\n"
    end
    events[#events + 1] = fields .. event
    start = stop + 2
  end
  return table.concat(events), text:sub(start)
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
  local status, code, message
  for name, value in pairs(headers) do
    bytes = bytes + #name + #value
    if name:sub(1, 1) ~= ":" then
      count = count + 1
      if edge.header_problem(name, value, grpc) then
        dropped[#dropped + 1] = name
      elseif status == nil then
        status, code, message = edge.header_refusal(name, value)
      end
    end
  end
  if bytes > edge.MAX_HEADER_BYTES or count > edge.MAX_HEADERS then
    return refuse(handle, grpc, 431, 3, "Request Header Fields Too Large")
  end
  if status ~= nil then
    return refuse(handle, grpc, status, code, message)
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

  -- The URL a trace records (envoy.yaml's tracing, http.url): without the
  -- query, which may hold a signed link's signature or a key.
  local path = headers:get(":path") or ""
  local mark = path:find("?", 1, true)
  metadata:set(
    METADATA,
    "url",
    (headers:get(":scheme") or "http") .. "://" .. (headers:get(":authority") or "") .. path:sub(1, (mark or 0) - 1)
  )

  -- A native gRPC call carries its fields in the message, which the edge
  -- does not read; a JSON request's query is checked here.
  local values = {}
  if not grpc then
    if mark ~= nil then
      local kept, problem
      kept, problem, values = edge.check_query(edge.QUERY_FIELDS[headers:get(":method")], path:sub(mark + 1))
      if problem ~= nil then
        return refuse(handle, false, 400, 3, problem)
      end
      if kept ~= nil then
        headers:replace(":path", path:sub(1, kept == "" and mark - 1 or mark) .. kept)
      end
    end
  end

  -- (Envoy joins repeated authorization headers into one value, as the
  -- api_server then reads it.)
  metadata:set(METADATA, "rate_limit_bucket", edge.rate_limit_bucket(headers:get("authorization"), values.signature))

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

-- A watch's events, each as it comes (edge.sse_fields); 204 instead when
-- the api_server says the watch had nothing more to send.
local function server_sent_events(handle, headers)
  if headers:get(edge.WATCH_ENDED_HEADER) ~= nil then
    headers:remove(edge.WATCH_ENDED_HEADER)
    headers:remove("content-type")
    headers:replace(":status", "204")
    return
  end
  headers:replace("cache-control", "no-cache")
  local rest = ""
  for chunk in handle:bodyChunks() do
    local events
    events, rest = edge.sse_fields(rest .. chunk:getBytes(0, chunk:length()))
    chunk:setBytes(events)
  end
  if rest ~= "" then
    handle:logWarn("a server-sent event was cut off: " .. #rest .. " bytes not sent")
  end
end

-- A JSON client gets no grpc-* header or trailer (grpc-status,
-- grpc-message, grpc-accept-encoding, ...). Neither the events nor
-- waiting for the trailers hold the body back: a watch's events still flow
-- as they come.
function envoy_on_response(handle)
  local state = handle:streamInfo():dynamicMetadata():get(METADATA)
  if state == nil or not state.json_client then
    return
  end
  local headers = handle:headers()
  drop_grpc_headers(headers)
  local content_type = headers:get("content-type")
  if content_type ~= nil and content_type:sub(1, 17) == "text/event-stream" then
    server_sent_events(handle, headers)
  end
  local trailers = handle:trailers()
  if trailers ~= nil then
    drop_grpc_headers(trailers)
  end
end
