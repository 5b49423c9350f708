-- wrk script for the ingest row: every request is one RIA call with its own call_id.
-- wrk -s bench/calls.lua URL -- <first_call_id> <missed_every_n>
-- Per thread, call_id = first + thread_index * 100000000 + n; one call in `missed_every_n`
-- is missed (NOANSWER), the rest ANSWER. At the end it prints, per thread, a line
-- "RESULT <2xx> <other> <accepted>" that the bench reads.

local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  first = tonumber(args[1] or "1000000000")
  missed_every = tonumber(args[2] or "4")
  n = 0
  ok = 0
  other = 0
  accepted = 0
  base = first + index * 100000000
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

local template = '{"call_id":%d,"caller_phone":"067%07d","date":"%s",' ..
  '"destination_phone":"0731375686","duration":%d,"link":"","marka":"Acura","marka_id":98,' ..
  '"model":"MDX","model_id":955,"phone":"0730946407","price":0,"status":"%s","waighting":%d}'

function request()
  n = n + 1
  local call_id = base + n
  local missed = (call_id % missed_every) == 0
  local status = missed and "NOANSWER" or "ANSWER"
  local body = string.format(template, call_id, call_id % 10000000,
    os.date("%Y-%m-%dT%H:%M:%S"), missed and 0 or 57, status, missed and 11 or 22)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
    if string.find(body, '"accepted": 1', 1, true) or string.find(body, '"accepted":1', 1, true) then
      accepted = accepted + 1
    end
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write(string.format("RESULT %d %d %d\n", thread:get("ok"), thread:get("other"),
      thread:get("accepted")))
  end
end
