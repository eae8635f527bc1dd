-- wrk script: counts response bodies by their first line, and prints the counts as "bodies: name=N ...".
-- One thread (-t1) keeps the counting in one Lua state; done() reads it back through the thread handle.
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

counts = {}

function response(status, headers, body)
    local name = (body or ""):match("^[^\n]*") or ""
    counts[name] = (counts[name] or 0) + 1
end

function done(summary, latency, requests)
    for _, thread in ipairs(threads) do
        local seen = thread:get("counts")
        local line = "bodies:"
        for name, count in pairs(seen) do
            line = line .. " " .. name .. "=" .. count
        end
        print(line)
    end
end
