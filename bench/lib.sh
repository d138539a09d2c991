# Shared by the bench scripts; sourced after they `cd` to the repository root and define
# `fail MESSAGE` (which prints their name and exits).

# bench_workspace NAME: sets $work (scratch files, removed on exit unless it is also the output
# folder), $out (created if needed, made absolute: nginx resolves relative paths against its own
# prefix) and started=() (processes stopped by their ids on exit), and installs the EXIT trap.
bench_workspace() {
  work=$(mktemp -d -t "fusebox-$1-bench.XXXXXX")
  [ -n "$out" ] || out=$work
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  started=()
  trap bench_on_exit EXIT
}

bench_on_exit() {
  [ ${#started[@]} -eq 0 ] || kill "${started[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "$out" != "$work" ]; then rm -rf "$work"; fi
}

# Waits until FILE has at least N lines (a process printing its ports), for 10 s at most.
wait_lines() { # file n what
  for _ in $(seq 200); do
    [ "$(wc -l <"$1")" -ge "$2" ] && return
    sleep 0.05
  done
  fail "$3 did not report its ports (see $1)"
}

# A free loopback port, for servers that cannot report the one they bound (nginx, HAProxy):
# bind port 0, read the number, release it.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
