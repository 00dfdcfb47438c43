#!/bin/sh
# Entrypoint of the DeepSynth images. Inside a container the server binds 0.0.0.0, so the
# compose files set DEEPSYNTH_ALLOW_UNAUTHENTICATED=1 and publish the port on the host's
# loopback only (DEEPSYNTH_PUBLISH_ADDRESS, default 127.0.0.1). Published on any other address,
# the API must have a token: refuse to start without one. Then the command replaces this shell
# (exec), so the server is PID 1 and gets docker's SIGTERM itself (it pauses running jobs,
# writing a checkpoint or shard, before it exits).
set -eu
case "${DEEPSYNTH_PUBLISH_ADDRESS:-127.0.0.1}" in
    127.*|localhost|::1|"[::1]") ;;
    *)
        if [ -z "${DEEPSYNTH_API_TOKEN:-}" ]; then
            echo "error: the port is published on ${DEEPSYNTH_PUBLISH_ADDRESS}, reachable from" \
                 "other machines, and DEEPSYNTH_API_TOKEN is not set. Set DEEPSYNTH_API_TOKEN" \
                 "(every request then needs it), or publish on 127.0.0.1." >&2
            exit 78
        fi
        ;;
esac
if [ -n "${DEEPSYNTH_API_TOKEN:-}" ]; then
    unset DEEPSYNTH_ALLOW_UNAUTHENTICATED   # a token means authentication, always
fi
exec "$@"
