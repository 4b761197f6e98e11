-- enqueue.lua — wrk script for bench/enqueue.py: every request a POST of a
-- distinct URL job (the run's tag, the thread's id and a counter in the query, so
-- that no request is deduplicated into an earlier job), and a count of the
-- answers by status, printed at the end for enqueue.py to read.
local threads = {}

function setup(thread)
    thread:set("id", #threads)
    table.insert(threads, thread)
end

function init(args)
    source = args[1] or "http://127.0.0.1:9/photo.jpg"
    run = args[2] or "0" -- a tag of this run: its URLs are not an earlier run's
    n = 0
    statuses = {}
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
end

function request()
    n = n + 1
    local body = string.format(
        '{"url": "%s?r=%s&t=%d&n=%d", "width": 100, "height": 100, "fit": "cover", "format": "jpeg"}',
        source, run, id, n)
    return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
    if status ~= 202 and not shown then shown = true; io.stderr:write("first non-202: " .. status .. " " .. body .. "\n") end
    statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
    local all = {}
    for _, t in ipairs(threads) do
        local s = t:get("statuses")
        for status, count in pairs(s) do
            all[status] = (all[status] or 0) + count
        end
    end
    local parts = {}
    for status, count in pairs(all) do
        table.insert(parts, string.format("%d=%d", status, count))
    end
    table.sort(parts)
    io.write("statuses: " .. table.concat(parts, " ") .. "\n")
    io.write(string.format("p99_us: %d\n", latency:percentile(99)))
    io.write(string.format("p50_us: %d\n", latency:percentile(50)))
end
