#!/usr/bin/env bash
# Sourced by scripts/test-env.sh (the dispatcher); not run on its own.
# Paths, versions and helpers every part of the test environment uses: ports and processes.

# ------------------------------------------------------------------------------------------------ ports
declare -A TAKEN=()
# Ports come from below the kernel's ephemeral range, so that no outgoing connection can take a chosen
# port between the choice and the bind.
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((15000 + RANDOM % (EPHEMERAL_LOW - 15000)))
    [ -n "${TAKEN[$p]:-}" ] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then TAKEN[$p]=1; echo "$p"; return 0; fi
  done
  die "no free port found"
}

wait_port() { # port seconds name
  local deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    [ $SECONDS -lt "$deadline" ] || die "$3 did not open port $1 within $2 s (log: $RUN/log/$3.log)"
    alive "$3" || die "$3 exited (log: $RUN/log/$3.log)"
    sleep 0.1
  done
}

# --------------------------------------------------------------------------------------------- processes
start_bg() { # name command...
  local name=$1; shift
  # What `start NAME` needs to run it again: the exported environment and the command, shell-quoted.
  mkdir -p "$RUN/cmd"
  { export -p; printf 'cd %q\n' "$PWD"; printf 'exec'; printf ' %q' "$@"; printf '\n'; } >"$RUN/cmd/$name"
  chmod 600 "$RUN/cmd/$name"
  nohup "$@" >>"$RUN/log/$name.log" 2>&1 &
  echo "$! $name" >>"$RUN/pids"
}

# SIGKILLs one process of the environment and waits until it is gone.
kill_one() { # name
  local pid; pid=$(awk -v n="$1" '$2==n{print $1}' "$RUN/pids" | tail -1)
  [ -n "$pid" ] || die "no process named $1"
  kill -9 "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  say "killed $1 ($pid)"
}

# SIGSTOP / SIGCONT: a process that hangs (accepts connections, answers nothing) and comes back.
signal_one() { # name signal what
  local pid; pid=$(awk -v n="$1" '$2==n{print $1}' "$RUN/pids" | tail -1)
  [ -n "$pid" ] || die "no process named $1"
  kill -"$2" "$pid"
  say "$3 $1 ($pid)"
}

# Starts a killed process again from its recorded command.
start_one() { # name
  [ -f "$RUN/cmd/$1" ] || die "no recorded command for $1"
  alive "$1" && die "$1 is still running"
  nohup bash "$RUN/cmd/$1" >>"$RUN/log/$1.log" 2>&1 &
  echo "$! $1" >>"$RUN/pids"
  say "started $1 ($!)"
}

alive() { local pid; pid=$(awk -v n="$1" '$2==n{print $1}' "$RUN/pids" | tail -1); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

down() {
  [ -f "$RUN/pids" ] || { say "nothing to stop"; return 0; }
  # etcd last: a kube-apiserver whose etcd went first spins on reconnects until it is killed.
  stop_where '$2 != "etcd"'
  stop_where '$2 == "etcd"'
  : >"$RUN/pids"
  [ -f "$RUN/etcd-dir" ] && rm -rf "$(cat "$RUN/etcd-dir")" "$RUN/etcd-dir"
  say "stopped"
}

# TERMs the recorded processes whose "PID NAME" line matches the awk condition; KILLs them after 8 s.
stop_where() { # awk-condition
  local pid name pids=()
  while read -r pid name; do
    if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null && pids+=("$pid") && say "stopping $name ($pid)"; fi
  done < <(awk "$1" "$RUN/pids")
  local deadline=$((SECONDS + 8))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do
      if [ $SECONDS -ge $deadline ]; then kill -9 "$pid" 2>/dev/null || true; break; fi
      sleep 0.1
    done
  done
}

rand() { head -c 18 /dev/urandom | base64 | tr -d '/+=' | head -c 20; }
