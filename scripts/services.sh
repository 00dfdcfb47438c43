# shellcheck shell=bash
# The DeepSynth services on this machine, shared by start-all.sh, start-dataset-generation.sh,
# start-model-training.sh and stop-all.sh (sourced by them, never run on its own).
#
#   ds_main SERVICES [start|stop|restart|status] [--docker] [-- EXTRA SERVE ARGS]
#
# SERVICES is "cpu", "gpu" or "cpu gpu". start: set up .venv if needed (scripts/setup.sh),
# check the machine (GPU, Hub token, free ports), render the demo dataset if missing, start
# each service in the background (`deepsynth serve --role ROLE`) with a pid file and a log
# file in the run folder, wait for GET /api/health, print the URLs. stop: SIGTERM by pid (the
# server pauses running jobs, writing a checkpoint or shard, and exits), waiting up to
# DEEPSYNTH_STOP_TIMEOUT seconds. --docker: the same through docker compose.
# Environment variables: see docs/deployment.md.

DS_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

ds_say() { printf '%s\n' "$*"; }
ds_warn() { printf 'warning: %s\n' "$*" >&2; }
ds_error() { printf 'error: %s\n' "$*" >&2; }

# Settings, from the environment. A relative data root is taken from the caller's folder.
ds_configure() {
    local root="${DEEPSYNTH_DATA_ROOT:-$DS_REPO/data}"
    case "$root" in /*) ;; *) root="$PWD/$root" ;; esac
    DS_DATA_ROOT="$root"
    DS_RUN_DIR="${DEEPSYNTH_RUN_DIR:-$DS_DATA_ROOT/run}"
    case "$DS_RUN_DIR" in /*) ;; *) DS_RUN_DIR="$PWD/$DS_RUN_DIR" ;; esac
    DS_HOST="${DEEPSYNTH_HOST:-127.0.0.1}"
    DS_CPU_PORT="${DEEPSYNTH_CPU_PORT:-5000}"
    DS_GPU_PORT="${DEEPSYNTH_GPU_PORT:-5001}"
    DS_START_TIMEOUT="${DEEPSYNTH_START_TIMEOUT:-180}"
    DS_STOP_TIMEOUT="${DEEPSYNTH_STOP_TIMEOUT:-75}"
    local port
    for port in "$DS_CPU_PORT" "$DS_GPU_PORT"; do
        if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
            ds_error "port '$port' is not a number from 1 to 65535 (DEEPSYNTH_CPU_PORT," \
                     "DEEPSYNTH_GPU_PORT)"
            return 2
        fi
    done
    if ! [[ "$DS_START_TIMEOUT$DS_STOP_TIMEOUT" =~ ^[0-9]+$ ]]; then
        ds_error "DEEPSYNTH_START_TIMEOUT and DEEPSYNTH_STOP_TIMEOUT are whole seconds"
        return 2
    fi
    if [ "$DS_CPU_PORT" = "$DS_GPU_PORT" ]; then
        ds_error "DEEPSYNTH_CPU_PORT and DEEPSYNTH_GPU_PORT are both $DS_CPU_PORT;" \
                 "the two services need two ports"
        return 2
    fi
    # Where a browser or the other service reaches each service: loopback when bound to
    # every interface; override with DEEPSYNTH_CPU_URL / DEEPSYNTH_GPU_URL (e.g. behind a proxy).
    DS_LOCAL_HOST="$DS_HOST"
    case "$DS_HOST" in
        0.0.0.0) DS_LOCAL_HOST=127.0.0.1 ;;
        ::|"[::]") DS_LOCAL_HOST="[::1]" ;;
        *:*) DS_LOCAL_HOST="[$DS_HOST]" ;;
    esac
    ds_urls
}

ds_urls() {
    DS_CPU_URL="${DEEPSYNTH_CPU_URL:-http://$DS_LOCAL_HOST:$DS_CPU_PORT}"
    DS_GPU_URL="${DEEPSYNTH_GPU_URL:-http://$DS_LOCAL_HOST:$DS_GPU_PORT}"
}

ds_python() {
    if [ -x "$DS_REPO/.venv/bin/python" ]; then
        "$DS_REPO/.venv/bin/python" "$@"
    else
        python3 "$@"
    fi
}

ds_port() { if [ "$1" = cpu ]; then echo "$DS_CPU_PORT"; else echo "$DS_GPU_PORT"; fi; }
ds_url() { if [ "$1" = cpu ]; then echo "$DS_CPU_URL"; else echo "$DS_GPU_URL"; fi; }
ds_title() {
    if [ "$1" = cpu ]; then printf '%-24s' "dataset generation (cpu)"; else printf '%-24s' "training (gpu)"; fi
}
ds_pid_file() { echo "$DS_RUN_DIR/$1.pid"; }
ds_log_file() { echo "$DS_RUN_DIR/$1.log"; }

# The role answering GET /api/health on port $1 (prints it; status 1 when nothing answers).
ds_health_role() {
    ds_python - "$DS_LOCAL_HOST" "$1" <<'EOF'
import json, sys, urllib.request
host, port = sys.argv[1], sys.argv[2]
try:
    with urllib.request.urlopen(f"http://{host}:{port}/api/health", timeout=3) as response:
        print(json.load(response).get("role", ""))
except Exception:
    sys.exit(1)
EOF
}

# Status 0 when HOST:PORT can be bound (as the server will bind it, with SO_REUSEADDR);
# otherwise status 1 and the reason on stdout.
ds_port_free() {
    ds_python - "$DS_HOST" "$1" <<'EOF'
import socket, sys
host, port = sys.argv[1].strip("[]"), int(sys.argv[2])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
with socket.socket(family) as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError as error:
        print(error.strerror or error)
        sys.exit(1)
EOF
}

# Who listens on port $1, when ss can tell (for the message about a busy port).
ds_port_owner() {
    command -v ss >/dev/null 2>&1 || return 0
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n 1 || true
}

# Status 0 while process $1 exists and has not exited (a zombie, exited but not yet reaped
# by its parent, counts as gone).
ds_pid_alive() {
    kill -0 "$1" 2>/dev/null || return 1
    if [ -r "/proc/$1/stat" ]; then
        case "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" in
            Z|X|"") return 1 ;;
        esac
    fi
}

# The pid in service $1's pid file when that process is alive and is a deepsynth server
# (not a pid the system gave to something else since); status 1 otherwise.
ds_running_pid() {
    local file pid command
    file=$(ds_pid_file "$1")
    [ -f "$file" ] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [ -n "$pid" ] && ds_pid_alive "$pid" || return 1
    if [ -r "/proc/$pid/cmdline" ]; then
        command=$(tr '\0' ' ' <"/proc/$pid/cmdline")
    else
        command=$(ps -o command= -p "$pid" 2>/dev/null || true)
    fi
    case "$command" in
        *deepsynth*serve*) echo "$pid" ;;
        "") echo "$pid" ;;   # exiting: its memory, and so its command line, is gone already
        *) return 1 ;;
    esac
}

ds_detect_gpu() {
    local report
    report=$(ds_python - <<'EOF' 2>/dev/null
import torch
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"cuda {torch.cuda.device_count()} {p.total_memory / 2**30:.1f} {p.name}")
else:
    print(f"cpu {torch.__version__}")
EOF
    ) || report="unknown"
    case "$report" in
        cuda*)
            read -r _ count memory name <<<"$report"
            ds_say "GPU: $name ($memory GiB; $count visible): training runs on it."
            if awk "BEGIN { exit !($memory < 22) }"; then
                ds_warn "DeepSeek-OCR-2 with LoRA wants about 24 GB of GPU memory; with" \
                        "$memory GiB use --peft qlora or the low_memory preset (README: Troubleshooting)"
            fi
            ;;
        cpu*)
            if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
                ds_warn "nvidia-smi sees a GPU, but torch ${report#cpu } in .venv is a CPU build:" \
                        "training will run on the CPU, with tiny models only. Install a CUDA" \
                        "build (README: GPU not detected)."
            else
                ds_say "No GPU detected: training will run on the CPU, with tiny models only" \
                       "(tiny-deepseek-ocr-2, random weights, for demos and tests)." \
                       "DeepSeek-OCR-2 needs a CUDA GPU."
            fi
            ;;
        *) ds_warn "could not import torch from .venv to look for a GPU" ;;
    esac
}

ds_check_environment() {
    if [ -z "${HF_TOKEN:-}" ] && [ -z "${HUGGING_FACE_HUB_TOKEN:-}" ]; then
        ds_warn "HF_TOKEN is not set: everything works offline on the built-in data; a Hub" \
                "token is only needed to push datasets or models to the Hugging Face Hub (or" \
                "to read private or gated Hub datasets). It can also be given per request."
    fi
    case "$DS_HOST" in
        127.*|localhost|::1|"[::1]") ;;
        *)
            if [ -z "${DEEPSYNTH_API_TOKEN:-}" ] \
                    && [ "${DEEPSYNTH_ALLOW_UNAUTHENTICATED:-}" != 1 ]; then
                ds_error "DEEPSYNTH_HOST=$DS_HOST is reachable from other machines: set" \
                         "DEEPSYNTH_API_TOKEN (every request then needs it) or serve on" \
                         "127.0.0.1"
                return 2
            fi
            ;;
    esac
}

# Refuse a port that something else holds. Status 0: free; 3: our own service of that role
# already answers there (nothing to start); 1: busy (message printed).
ds_check_port() {
    local service=$1 port reason role owner
    port=$(ds_port "$service")
    reason=$(ds_port_free "$port") && return 0
    role=$(ds_health_role "$port" 2>/dev/null || true)
    if [ "$role" = "$service" ] && { [ -n "${DS_DOCKER:-}" ] || ds_running_pid "$service" >/dev/null; }; then
        return 3
    fi
    owner=$(ds_port_owner "$port")
    if [ -n "$role" ]; then
        owner="a deepsynth $role service answers there${owner:+, $owner}"
    fi
    ds_error "port $port for the $service service is already in use (${reason:-busy}${owner:+; $owner})."
    ds_error "Stop what holds it, or choose another port, e.g." \
             "DEEPSYNTH_${service^^}_PORT=$((port + 10)) $DS_SCRIPT"
    return 1
}

# The demo dataset of the README's tour, rendered from the built-in corpus (offline, ~10 s).
ds_render_demo() {
    [ "${DEEPSYNTH_SKIP_DEMO:-0}" = 1 ] && return 0
    local demo="$DS_DATA_ROOT/datasets/scitldr-demo"
    if ds_python - "$demo/deepsynth-manifest.json" <<'EOF' 2>/dev/null; then return 0; fi
import json, sys
sys.exit(0 if json.load(open(sys.argv[1])).get("status") == "complete" else 1)
EOF
    ds_say "Rendering the demo dataset (built-in SciTLDR, 200 rows per split, 256 px) into $demo"
    "$DS_REPO/.venv/bin/deepsynth" generate --source builtin:scitldr --out "$demo" \
        --max-samples 200 --page-size 256x256 --font-size 12 --margin 8 >/dev/null
}

ds_launch() {
    local service=$1 port log pid_file other_flag other_url
    port=$(ds_port "$service")
    log=$(ds_log_file "$service")
    pid_file=$(ds_pid_file "$service")
    if [ "$service" = cpu ]; then
        other_flag=--gpu-service-url; other_url=$DS_GPU_URL
    else
        other_flag=--cpu-service-url; other_url=$DS_CPU_URL
    fi
    local command=("$DS_REPO/.venv/bin/deepsynth" serve --role "$service" --host "$DS_HOST"
                   --port "$port" --data-root "$DS_DATA_ROOT" "$other_flag" "$other_url")
    [ "${DEEPSYNTH_AUTO_RESUME:-1}" = 1 ] && command+=(--auto-resume)
    command+=("${DS_SERVE_ARGS[@]}")
    rm -f "$pid_file"
    printf '\n== %s: %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "${command[*]}" >>"$log"
    # A session of its own: Ctrl-C in this terminal or closing it does not reach the
    # server. The process writes its own pid, then becomes the server (exec).
    local detach=(nohup)
    command -v setsid >/dev/null 2>&1 && detach=(setsid)
    # shellcheck disable=SC2016  # $$ and $0 are the inner shell's
    "${detach[@]}" bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' \
        "$pid_file" "${command[@]}" >>"$log" 2>&1 </dev/null &
    local waited=0
    until [ -s "$pid_file" ]; do
        sleep 0.1
        waited=$((waited + 1))
        [ "$waited" -lt 100 ] || { ds_error "the $service service did not start (see $log)"; return 1; }
    done
}

# Wait for every named service's /api/health to answer with its role.
ds_wait_healthy() {
    local deadline=$((SECONDS + DS_START_TIMEOUT)) service pending=("$@") left role
    while [ "${#pending[@]}" -gt 0 ]; do
        left=()
        for service in "${pending[@]}"; do
            role=$(ds_health_role "$(ds_port "$service")" 2>/dev/null || true)
            [ "$role" = "$service" ] && continue
            if [ -z "${DS_DOCKER:-}" ] && ! ds_running_pid "$service" >/dev/null; then
                ds_error "the $service service exited while starting; the end of" \
                         "$(ds_log_file "$service"):"
                tail -n 20 "$(ds_log_file "$service")" >&2 || true
                return 1
            fi
            left+=("$service")
        done
        pending=("${left[@]}")
        [ "${#pending[@]}" -eq 0 ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            ds_error "no answer from /api/health of: ${pending[*]} after ${DS_START_TIMEOUT} s" \
                     "(DEEPSYNTH_START_TIMEOUT)"
            return 1
        fi
        sleep 0.5
    done
}

ds_print_urls() {
    local service pid
    ds_say ""
    ds_say "DeepSynth is running (data root $DS_DATA_ROOT):"
    for service in "$@"; do
        if [ -n "${DS_DOCKER:-}" ]; then
            ds_say "  $(ds_title "$service")  $(ds_url "$service")   (container)"
        else
            pid=$(ds_running_pid "$service" || echo "?")
            ds_say "  $(ds_title "$service")  $(ds_url "$service")   pid $pid, log $(ds_log_file "$service")"
        fi
    done
    ds_say "Open $(ds_url "$1") in a browser; API: $(ds_url "$1")/api/health, docs/api.md."
    ds_say "Stop with $(dirname "$DS_SCRIPT")/stop-all.sh (or $DS_SCRIPT stop)."
}

# Stop the named services by pid: SIGTERM to all, then wait. The server pauses its running
# jobs first (a training job writes a checkpoint), for up to 60 s.
ds_stop() {
    local service pid stopping=() status=0
    for service in "$@"; do
        if pid=$(ds_running_pid "$service"); then
            ds_say "Stopping the $service service (pid $pid); running jobs are paused first..."
            kill -TERM "$pid" 2>/dev/null || true
            stopping+=("$service:$pid")
        else
            [ -f "$(ds_pid_file "$service")" ] && rm -f "$(ds_pid_file "$service")"
            ds_say "The $service service is not running."
        fi
    done
    local deadline=$((SECONDS + DS_STOP_TIMEOUT)) entry left
    while [ "${#stopping[@]}" -gt 0 ]; do
        left=()
        for entry in "${stopping[@]}"; do
            service=${entry%%:*}; pid=${entry#*:}
            if ds_pid_alive "$pid"; then
                left+=("$entry")
            else
                rm -f "$(ds_pid_file "$service")"
                ds_say "Stopped the $service service."
            fi
        done
        stopping=("${left[@]}")
        [ "${#stopping[@]}" -eq 0 ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            for entry in "${stopping[@]}"; do
                service=${entry%%:*}; pid=${entry#*:}
                ds_warn "the $service service (pid $pid) is still running after" \
                        "${DS_STOP_TIMEOUT} s (DEEPSYNTH_STOP_TIMEOUT); killing it. Its jobs" \
                        "resume from their last checkpoint or shard."
                kill -KILL "$pid" 2>/dev/null || true
                rm -f "$(ds_pid_file "$service")"
            done
            status=1
            break
        fi
        sleep 0.5
    done
    return "$status"
}

ds_status() {
    local service pid role status=0
    for service in "$@"; do
        role=$(ds_health_role "$(ds_port "$service")" 2>/dev/null || true)
        if pid=$(ds_running_pid "$service"); then
            if [ "$role" = "$service" ]; then
                ds_say "$service: running, pid $pid, $(ds_url "$service") (healthy)"
            else
                ds_say "$service: pid $pid, but $(ds_url "$service")/api/health does not answer"
                status=1
            fi
        else
            ds_say "$service: not running${role:+ (a $role service answers on port $(ds_port "$service"), not started by this script)}"
            status=1
        fi
    done
    return "$status"
}

ds_compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose "$@"
    elif command -v docker-compose >/dev/null 2>&1; then
        docker-compose "$@"
    else
        ds_error "--docker needs Docker with the compose plugin (docker compose), or" \
                 "docker-compose; without Docker, leave out --docker"
        return 1
    fi
}

ds_docker() {
    local action=$1 service files=()
    shift
    for service in "$@"; do files+=(-f "$DS_REPO/docker-compose.$service.yml"); done
    command -v docker >/dev/null 2>&1 || { ds_error "docker is not installed"; return 1; }
    if ! docker info >/dev/null 2>&1; then
        ds_error "cannot reach the Docker daemon (docker info failed): start Docker, or leave" \
                 "out --docker to run the services without it"
        return 1
    fi
    case "$action" in
        start)
            if [[ " $* " == *" gpu "* ]] && ! { command -v nvidia-smi >/dev/null 2>&1 \
                    && nvidia-smi -L >/dev/null 2>&1; }; then
                ds_error "the gpu container needs an NVIDIA GPU (driver and NVIDIA Container" \
                         "Toolkit) and none was found. Start the generation container alone" \
                         "(./start-dataset-generation.sh --docker) and train without Docker" \
                         "(./start-model-training.sh)."
                return 1
            fi
            DS_DOCKER=1
            # The host ports are published on DEEPSYNTH_PUBLISH_ADDRESS (compose files).
            local publish="${DEEPSYNTH_PUBLISH_ADDRESS:-127.0.0.1}"
            case "$publish" in
                0.0.0.0) DS_LOCAL_HOST=127.0.0.1 ;;
                ::|"[::]") DS_LOCAL_HOST="[::1]" ;;
                \[*) DS_LOCAL_HOST=$publish ;;
                *:*) DS_LOCAL_HOST="[$publish]" ;;
                *) DS_LOCAL_HOST=$publish ;;
            esac
            ds_urls
            local busy=0
            for service in "$@"; do ds_check_port "$service" || [ $? -eq 3 ] || busy=1; done
            [ "$busy" -eq 0 ] || return 1
            ds_check_environment || return
            DEEPSYNTH_CPU_PORT=$DS_CPU_PORT DEEPSYNTH_GPU_PORT=$DS_GPU_PORT \
                ds_compose "${files[@]}" up --detach --build || return
            ds_wait_healthy "$@" || { ds_compose "${files[@]}" logs --tail 30 >&2; return 1; }
            ds_print_urls "$@"
            ;;
        stop) ds_compose "${files[@]}" stop ;;
        status) ds_compose "${files[@]}" ps ;;
    esac
}

ds_start() {
    local service code busy=0 to_start=()
    for service in "$@"; do
        code=0
        ds_check_port "$service" || code=$?
        case "$code" in
            0) to_start+=("$service") ;;
            3) ds_say "The $service service is already running (pid $(ds_running_pid "$service"))." ;;
            *) busy=1 ;;
        esac
    done
    [ "$busy" -eq 0 ] || return 1
    if [ "${#to_start[@]}" -gt 0 ]; then
        ds_check_environment || return
        bash "$DS_REPO/scripts/setup.sh" || return
        [[ " ${to_start[*]} " == *" gpu "* ]] && ds_detect_gpu
        ds_render_demo || { ds_error "rendering the demo dataset failed"; return 1; }
        mkdir -p "$DS_RUN_DIR"
        local launched=()
        for service in "${to_start[@]}"; do
            # Checked again: setup and the demo can take a while on a fresh machine. On any
            # failure, what this run started is stopped again.
            if ! ds_check_port "$service" || ! ds_launch "$service"; then
                [ "${#launched[@]}" -eq 0 ] || ds_stop "${launched[@]}" >/dev/null || true
                return 1
            fi
            launched+=("$service")
        done
        if ! ds_wait_healthy "${launched[@]}"; then
            ds_stop "${launched[@]}" >/dev/null || true
            return 1
        fi
    fi
    ds_print_urls "$@"
}

ds_usage() {
    cat <<EOF
usage: $DS_SCRIPT [start|stop|restart|status] [--docker] [-- EXTRA deepsynth serve OPTIONS]

  start (default)  set up .venv if needed, start the service(s) in the background, wait for
                   /api/health and print the URLs
  stop             stop the service(s) started by these scripts (SIGTERM by pid; running jobs
                   are paused and checkpointed first)
  restart          stop, then start
  status           pid and health of each service
  --docker         the same with docker compose (docker-compose.cpu.yml, docker-compose.gpu.yml)

Environment: DEEPSYNTH_CPU_PORT (5000), DEEPSYNTH_GPU_PORT (5001), DEEPSYNTH_DATA_ROOT (./data),
DEEPSYNTH_HOST (127.0.0.1), DEEPSYNTH_API_TOKEN, HF_TOKEN, DEEPSYNTH_SKIP_DEMO=1,
DEEPSYNTH_AUTO_RESUME=0, DEEPSYNTH_START_TIMEOUT, DEEPSYNTH_STOP_TIMEOUT (docs/deployment.md).
EOF
}

ds_main() {
    local services=$1 action=start docker=""
    shift
    DS_SCRIPT=${DS_SCRIPT:-$0}
    DS_SERVE_ARGS=()
    while [ "$#" -gt 0 ]; do
        case "$1" in
            start|stop|restart|status) action=$1 ;;
            --docker) docker=1 ;;
            -h|--help|help) ds_usage; return 0 ;;
            --) shift; DS_SERVE_ARGS=("$@"); break ;;
            *) ds_error "unknown argument '$1'"; ds_usage >&2; return 2 ;;
        esac
        shift
    done
    ds_configure || return
    cd "$DS_REPO" || return   # the services run from the checkout, wherever this was started
    # shellcheck disable=SC2086  # services is a list of words
    set -- $services
    if [ -n "$docker" ]; then
        case "$action" in
            restart) ds_docker stop "$@" && ds_docker start "$@" ;;
            *) ds_docker "$action" "$@" ;;
        esac
        return
    fi
    case "$action" in
        start) ds_start "$@" ;;
        stop) ds_stop "$@" ;;
        restart) ds_stop "$@" && ds_start "$@" ;;
        status) ds_status "$@" ;;
    esac
}
