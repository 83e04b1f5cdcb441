#!/usr/bin/env bash
# A throwaway three-node Apache Kafka cluster (KRaft) on 127.0.0.1 for fault tests: each node
# is one JVM that is both broker and controller, the three controllers a static voter quorum.
# Why combined nodes: three JVMs instead of six (three controllers + three brokers), which a
# 2-core machine starts in about the time of one; losing a node still leaves 2 of 3 voters and
# 2 of 3 replicas, so both the quorum and min.insync.replicas=2 survive a kill -9 of any one.
#
#   cluster.sh start          format (one fresh cluster id for all) and start the three nodes,
#                             wait until each serves metadata, print KAFKA_BROKERS=a,b,c
#   cluster.sh stop           stop every node (TERM, then KILL after 30 s) and delete the data
#   cluster.sh kill N         kill -9 node N (1..3): no controlled shutdown, its data stays
#   cluster.sh restart N      start node N again on its data (after kill), wait until it serves
#   cluster.sh pid N          node N's pid (exit 1 if it is not running)
#
# start.sh --brokers 3 and stop.sh call this; tests call kill/restart. Node N listens on
# KAFKA_PORT + 2(N-1), its controller on that + 1 (19092/19094/19096 by default), and keeps its
# data, logs, pid and server.properties in $KAFKA_RUN_DIR/node-N. Plaintext only.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

NODES=3
node_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
node_controller_port() { echo $(($(node_port "$1") + 1)); }
node_dir() { echo "$KAFKA_RUN_DIR/node-$1"; }
node_pid_file() { echo "$(node_dir "$1")/kafka.pid"; }
node_alive() { [[ -f "$(node_pid_file "$1")" ]] && kill -0 "$(cat "$(node_pid_file "$1")")" 2>/dev/null; }
all_brokers() {
  local i out=()
  for ((i = 1; i <= NODES; i++)); do out+=("127.0.0.1:$(node_port "$i")"); done
  (IFS=,; echo "${out[*]}")
}
check_node() {
  [[ $1 =~ ^[1-9]$ ]] && (($1 <= NODES)) || { echo "cluster.sh: node must be 1..$NODES, not \"$1\"" >&2; exit 2; }
}

write_node_config() {
  local i=$1 dir voters="" j
  dir="$(node_dir "$i")"
  for ((j = 1; j <= NODES; j++)); do voters+="${voters:+,}$j@127.0.0.1:$(node_controller_port "$j")"; done
  mkdir -p "$dir/data" "$dir/logs"
  cat >"$dir/server.properties" <<PROPS
# Written by infra/kafka/cluster.sh: node $i of a three-node KRaft test cluster. Not for production.
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$(node_port "$i"),CONTROLLER://127.0.0.1:$(node_controller_port "$i")
advertised.listeners=PLAINTEXT://127.0.0.1:$(node_port "$i")
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data

unclean.leader.election.enable=false
# A node killed with -9 is fenced, and its partitions get new leaders, within ~3 s (default 9 s).
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
PROPS
  kafka_test_props 3 >>"$dir/server.properties"
  cat >"$dir/log4j2.properties" <<PROPS
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.state.name = state.change.logger
logger.state.level = WARN
PROPS
}

launch_node() {
  local i=$1 dir
  dir="$(node_dir "$i")"
  # shellcheck disable=SC2086
  setsid java $KAFKA_HEAP_OPTS -server $KAFKA_GC_OPTS \
    -Xlog:gc:file="$dir/logs/gc.log":time,uptime,level,tags:filecount=2,filesize=20M \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" -Dkafka.logs.dir="$dir/logs" \
    -cp "$KAFKA_CLASSPATH" kafka.Kafka "$dir/server.properties" \
    >>"$dir/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$(node_pid_file "$i")"
}

fail() {
  echo "cluster.sh: $1; last lines of node $2's server.log:" >&2
  tail -n 30 "$(node_dir "$2")/logs/server.log" "$(node_dir "$2")/logs/stdout.log" >&2 2>/dev/null || true
  exit 1
}

# Ready = the node's port accepts connections AND it answers a Metadata request itself (it has
# caught up with the quorum and is unfenced).
wait_node() {
  local i=$1 port deadline
  port="$(node_port "$i")"
  deadline=$((SECONDS + KAFKA_START_TIMEOUT_S))
  until kafka_port_open "$port"; do
    node_alive "$i" || fail "node $i exited during start-up" "$i"
    ((SECONDS < deadline)) || fail "node $i did not open port $port within ${KAFKA_START_TIMEOUT_S}s" "$i"
    sleep 0.2
  done
  until kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$port" --list \
    >/dev/null 2>"$(node_dir "$i")/logs/probe.log"; do
    node_alive "$i" || fail "node $i exited during start-up" "$i"
    ((SECONDS < deadline)) || fail "node $i did not answer a metadata request within ${KAFKA_START_TIMEOUT_S}s" "$i"
    sleep 0.5
  done
}

new_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ $id == -* ]] || { echo "$id"; return; }
  done
}

stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  echo "cluster.sh: node pid $pid did not stop within 30s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.2
}

cmd_start() {
  local i running=0
  for ((i = 1; i <= NODES; i++)); do if node_alive "$i"; then running=$((running + 1)); fi; done
  if ((running == NODES)) && [[ -f "$KAFKA_RUN_DIR/nodes" ]]; then
    echo "cluster.sh: reusing the running cluster" >&2
    echo "KAFKA_BROKERS=$(all_brokers)"
    return
  fi
  if ((running > 0)); then
    echo "cluster.sh: $running of $NODES nodes in $KAFKA_RUN_DIR are running; restart the others (cluster.sh restart N) or stop them all (stop.sh)" >&2
    exit 1
  fi
  for ((i = 1; i <= NODES; i++)); do
    for port in "$(node_port "$i")" "$(node_controller_port "$i")"; do
      if kafka_port_open "$port"; then
        echo "cluster.sh: 127.0.0.1:$port is already in use by another process; set KAFKA_PORT to a free port" >&2
        exit 1
      fi
    done
  done
  if [[ -f "$KAFKA_PID_FILE" ]]; then
    echo "cluster.sh: $KAFKA_RUN_DIR belongs to a single broker; stop it first (stop.sh)" >&2
    exit 1
  fi
  mkdir -p "$KAFKA_RUN_DIR"
  cat >"$KAFKA_RUN_DIR/log4j2-tools.properties" <<PROPS
status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = err
PROPS
  local cluster_id="${KAFKA_CLUSTER_ID:-$(new_cluster_id)}" pids=()
  for ((i = 1; i <= NODES; i++)); do
    rm -rf "$(node_dir "$i")/data" "$(node_pid_file "$i")"
    write_node_config "$i"
  done
  # the three formats in parallel: each is a JVM start (~2 s on 2 cores)
  for ((i = 1; i <= NODES; i++)); do
    kafka_tool kafka.tools.StorageTool format --ignore-formatted "--cluster-id=$cluster_id" \
      --config "$(node_dir "$i")/server.properties" >"$(node_dir "$i")/logs/format.log" 2>&1 &
    pids+=($!)
  done
  for ((i = 1; i <= NODES; i++)); do
    wait "${pids[$((i - 1))]}" || { cat "$(node_dir "$i")/logs/format.log" >&2; echo "cluster.sh: formatting node $i failed" >&2; exit 1; }
  done
  echo "$NODES" >"$KAFKA_RUN_DIR/nodes"
  for ((i = 1; i <= NODES; i++)); do launch_node "$i"; done
  # A node's first metadata answer needs a quorum, i.e. the others up: wait for all in parallel.
  pids=()
  for ((i = 1; i <= NODES; i++)); do
    (wait_node "$i") &
    pids+=($!)
  done
  local failed=0
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  if ((failed)); then
    cmd_stop_all keep-logs
    exit 1
  fi
  echo "cluster.sh: Kafka cluster of $NODES nodes running (pids $(for ((i = 1; i <= NODES; i++)); do printf '%s ' "$(cat "$(node_pid_file "$i")")"; done)data in $KAFKA_RUN_DIR/node-*)" >&2
  echo "KAFKA_BROKERS=$(all_brokers)"
}

cmd_stop_all() {
  local i pids=()
  for ((i = 1; i <= NODES; i++)); do
    if node_alive "$i"; then
      local pid
      pid="$(cat "$(node_pid_file "$i")")"
      # all at once: a node stopping alone waits for the others to take over its partitions
      (stop_pid "$pid") &
      pids+=($!)
      echo "cluster.sh: stopping node $i (pid $pid)" >&2
    fi
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  for ((i = 1; i <= NODES; i++)); do
    local dir
    dir="$(node_dir "$i")"
    rm -rf "$dir/data" "$dir/kafka.pid" "$dir/server.properties" "$dir/log4j2.properties"
    if [[ "${1:-}" != keep-logs && "${KAFKA_KEEP_LOGS:-0}" != 1 ]]; then rm -rf "$dir/logs"; fi
    rmdir "$dir" 2>/dev/null || true
  done
  rm -f "$KAFKA_RUN_DIR/nodes" "$KAFKA_RUN_DIR/log4j2-tools.properties"
  rmdir "$KAFKA_RUN_DIR" 2>/dev/null || true
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop_all ;;
  kill)
    check_node "${2:-}"
    node_alive "$2" || { echo "cluster.sh: node $2 is not running" >&2; exit 1; }
    kill -KILL "$(cat "$(node_pid_file "$2")")"
    while node_alive "$2"; do sleep 0.05; done
    echo "cluster.sh: killed node $2 (-9)" >&2
    ;;
  restart)
    check_node "${2:-}"
    [[ -f "$KAFKA_RUN_DIR/nodes" ]] || { echo "cluster.sh: no cluster in $KAFKA_RUN_DIR (cluster.sh start)" >&2; exit 1; }
    if node_alive "$2"; then echo "cluster.sh: node $2 is running" >&2; exit 1; fi
    launch_node "$2"
    wait_node "$2"
    echo "cluster.sh: node $2 running again (pid $(cat "$(node_pid_file "$2")"))" >&2
    ;;
  pid)
    check_node "${2:-}"
    node_alive "$2" || exit 1
    cat "$(node_pid_file "$2")"
    ;;
  *)
    echo "usage: cluster.sh start | stop | kill N | restart N | pid N" >&2
    exit 2
    ;;
esac
