# Shared settings for the infra/kafka scripts. Source it: `. infra/kafka/env.sh`.
# Every value can be overridden from the environment, so tests can run several brokers side by side.
KAFKA_INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_DIST_DIR="${KAFKA_DIST_DIR:-$KAFKA_INFRA_DIR/dist}"
KAFKA_LIBS_DIR="$KAFKA_DIST_DIR/libs"
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
# One run dir per port: two brokers on different ports never share data, pid or logs.
KAFKA_RUN_DIR="${KAFKA_RUN_DIR:-$KAFKA_INFRA_DIR/run/$KAFKA_PORT}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
# G1 with a 5 ms pause target (Kafka's scripts use 20): the detection -> block loop waits on
# three broker round trips, and young pauses of 5-14 ms at 20 made its slowest attacks; 8
# alternated runs each, max 24.6 against 31.3 ms, no produce or consume cost (bench/RESULTS.md)
KAFKA_GC_OPTS="${KAFKA_GC_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=5}"
KAFKA_START_TIMEOUT_S="${KAFKA_START_TIMEOUT_S:-90}"
KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
KAFKA_PID_FILE="$KAFKA_RUN_DIR/kafka.pid"
KAFKA_CLASSPATH="$KAFKA_LIBS_DIR/*"
export KAFKA_INFRA_DIR KAFKA_DIST_DIR KAFKA_LIBS_DIR KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_RUN_DIR \
  KAFKA_HEAP_OPTS KAFKA_GC_OPTS KAFKA_START_TIMEOUT_S KAFKA_BROKERS KAFKA_PID_FILE KAFKA_CLASSPATH

# Short-lived admin JVMs (storage format, readiness probe) start faster without the C2 compiler.
KAFKA_TOOL_JAVA_OPTS="-Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Dlog4j2.configurationFile=$KAFKA_RUN_DIR/log4j2-tools.properties"

kafka_tool() {
  # shellcheck disable=SC2086
  java $KAFKA_TOOL_JAVA_OPTS -cp "$KAFKA_CLASSPATH" "$@"
}

kafka_pid_alive() {
  [[ -f "$KAFKA_PID_FILE" ]] && kill -0 "$(cat "$KAFKA_PID_FILE")" 2>/dev/null
}

kafka_port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The test brokers' settings past roles, ids and listeners, for `replicas` copies of every
# partition (1: the single broker of start.sh; 3: the cluster of cluster.sh, where a write is
# acknowledged by two and one node lost loses nothing acknowledged). Prints properties lines.
kafka_test_props() {
  local replicas="$1" min_isr=1
  ((replicas > 1)) && min_isr=$((replicas - 1))
  cat <<PROPS
# Topics are created explicitly (Admin.ensureTopics); a typo must not create a topic.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=$replicas
min.insync.replicas=$min_isr
# Internal topics on $replicas broker(s), and fewer offsets partitions so the first consumer
# group does not wait for 50 partitions to be created.
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
# Tests join and leave groups constantly: no initial rebalance delay, and allow short sessions.
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=500
group.consumer.min.session.timeout.ms=1000
group.consumer.min.heartbeat.interval.ms=500
# Let the log cleaner look at compacted topics often (tests check compaction in seconds).
log.cleaner.backoff.ms=1000
log.retention.check.interval.ms=5000
PROPS
}
