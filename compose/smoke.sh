#!/usr/bin/env bash
# Smoke test of the compose stack, wherever Docker (with the compose plugin) runs.
#
#   bash compose/smoke.sh            # build, start, check; the stack keeps running afterwards
#   bash compose/smoke.sh --no-up    # check a stack that is already up
#   bash compose/smoke.sh --down     # ... and remove it (with its volumes) at the end
#
# It waits for the services to be healthy, sends demo traffic that drifts after a minute (compose/traffic.py,
# run inside the sustain container), then checks, each within SMOKE_TIMEOUT seconds (default 900):
#   1. indicator documents of model churn appear in Elasticsearch (sustain-indicators);
#   2. the Kibana saved objects imported (the churn health dashboard exists);
#   3. an ElastAlert2 rule fired and its post to sustain's hook succeeded (alert_sent: true).
# Exit status 0 when all three hold; 1 with the failing check named otherwise.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
compose=(docker compose -f "$here/docker-compose.yml")
address="${PUBLISH_ADDRESS:-127.0.0.1}"
es="http://$address:9200"
kibana="http://$address:5601"
sustain="http://$address:${SMOKE_SUSTAIN_PORT:-8000}"
token="${SUSTAIN_WRITE_TOKEN:-compose-write-token}"
timeout="${SMOKE_TIMEOUT:-900}"
model="${SMOKE_MODEL:-churn}"
rule="${SMOKE_RULE:-churn-drift}"
up=1
down=0

for arg in "$@"; do
    case "$arg" in
        --no-up) up=0 ;;
        --down) down=1 ;;
        -h | --help)
            sed -n '2,13p' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *)
            echo "unknown argument: $arg (see --help)" >&2
            exit 2
            ;;
    esac
done

started=$SECONDS
say() { printf '[%4ds] %s\n' "$((SECONDS - started))" "$*"; }
fail() {
    say "FAILED: $*" >&2
    say "the last lines of the services' logs follow" >&2
    "${compose[@]}" logs --tail 30 sustain elastalert kibana-import >&2 || true
    exit 1
}

# wait_for WHAT COMMAND...: run COMMAND every 5 seconds until it succeeds or the timeout passes.
wait_for() {
    local what="$1" deadline=$((SECONDS + timeout))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for $what"
        sleep 5
    done
    say "ok: $what"
}

# json_number KEY: the first number after "KEY": in the JSON on stdin (no jq needed).
json_number() {
    sed -n "s/.*\"$1\":[[:space:]]*\([0-9][0-9]*\).*/\1/p" | head -n 1
}

healthy() {
    local id
    id="$("${compose[@]}" ps -q "$1" | head -n 1)"
    [[ -n "$id" && "$(docker inspect -f '{{.State.Health.Status}}' "$id")" == "healthy" ]]
}

completed() {
    local id
    id="$("${compose[@]}" ps -a -q "$1" | head -n 1)"
    [[ -n "$id" && "$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$id")" == "exited 0" ]]
}

indicator_documents() {
    local count
    count="$(curl -fsS "$es/sustain-indicators/_count?q=model:$model" | json_number count)"
    [[ "${count:-0}" -gt 0 ]]
}

dashboard_imported() {
    curl -fsS "$kibana/api/saved_objects/dashboard/sustain-$model-health" | grep -q '"type":"dashboard"'
}

alert_sent() {
    local hits
    hits="$(curl -fsS "$es/elastalert_status/_search?size=0&q=alert_sent:true%20AND%20rule_name:%22$rule%22" |
        json_number value)"
    [[ "${hits:-0}" -gt 0 ]]
}

command -v docker >/dev/null || { echo "docker is not installed" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 1; }

if ((up)); then
    say "building and starting the stack (the first run pulls several GB of images)"
    "${compose[@]}" up -d --build
fi
for service in elasticsearch kibana redis postgres rustfs mlflow sustain; do
    wait_for "$service is healthy" healthy "$service"
done
wait_for "the exports were written" completed sustain-export
wait_for "the Kibana objects were imported" completed kibana-import
wait_for "sustain answers on $sustain" curl -fsS "$sustain/readyz"

say "sending demo traffic for ${SMOKE_TRAFFIC_SECONDS:-300}s (drift after 60s) through the sustain container"
"${compose[@]}" exec -T sustain python - --token "$token" --model "$model" \
    --seconds "${SMOKE_TRAFFIC_SECONDS:-300}" --drift-after 60 <"$here/traffic.py" &
traffic=$!

wait_for "indicator documents of $model in Elasticsearch" indicator_documents
wait_for "the Kibana dashboard sustain-$model-health" dashboard_imported
wait_for "ElastAlert2 rule $rule fired sustain's hook" alert_sent
wait "$traffic" || fail "the demo traffic did not all arrive (see its summary above)"

say "smoke test passed: Kibana $kibana, sustain $sustain, Elasticsearch $es"
if ((down)); then
    "${compose[@]}" down --volumes
fi
