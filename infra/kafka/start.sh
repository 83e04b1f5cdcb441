#!/usr/bin/env bash
# Start a throwaway single-node Apache Kafka (KRaft: broker + controller in one JVM) on
# 127.0.0.1, wait until it serves metadata, and print `KAFKA_BROKERS=127.0.0.1:<port>`.
#   KAFKA_PORT (19092)  KAFKA_CONTROLLER_PORT (port+1)  KAFKA_RUN_DIR (infra/kafka/run/<port>)
#   KAFKA_HEAP_OPTS (-Xms256m -Xmx512m)  KAFKA_GC_OPTS (-XX:+UseG1GC -XX:MaxGCPauseMillis=5)
#   KAFKA_START_TIMEOUT_S (90)
# The broker's GC pauses go to <run dir>/logs/gc.log (as Kafka's own start scripts log them).
#   KAFKA_CLUSTER_ID (a fresh random one)
# --keep-data: start on the data left by a broker that was killed (a restart, for fault tests).
# If a broker started by this script is already running on the port, it is reused.
#
# --secure (or KAFKA_SECURITY=sasl_ssl): clients only on SASL_SSL (TLS with a CA and broker
# certificate made here, SCRAM-SHA-512), the StandardAuthorizer with nothing allowed without an
# ACL, one principal per stage role and per test agent/watchdog with the ACLs of acls.txt, and
# one client config per principal in run/<port>/clients/ (secure.sh, README.md). Also prints
# KAFKA_SECURITY, KAFKA_CLIENT_CONFIG_DIR and KAFKA_CA_FILE.
#
# --brokers 3 (or KAFKA_BROKERS_COUNT=3): a three-node cluster instead (cluster.sh: replication
# factor 3, min.insync.replicas 2), printing KAFKA_BROKERS with all three; plaintext only.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

KAFKA_SECURITY="${KAFKA_SECURITY:-plaintext}"
brokers="${KAFKA_BROKERS_COUNT:-1}"
keep_data=0
while (($#)); do
  case "$1" in
    --secure) KAFKA_SECURITY=sasl_ssl ;;
    --brokers) brokers="${2:-}"; shift ;;
    --brokers=*) brokers="${1#--brokers=}" ;;
    --keep-data) keep_data=1 ;;
    *) echo "start.sh: unknown argument \"$1\" (they are --secure, --brokers 1|3 and --keep-data)" >&2; exit 2 ;;
  esac
  shift
done
if ((keep_data)) && [[ $KAFKA_SECURITY != plaintext || $brokers != 1 ]]; then
  echo "start.sh: --keep-data restarts a plaintext single broker (a cluster node: cluster.sh restart N)" >&2
  exit 2
fi
case "$brokers" in
  1) ;;
  3)
    if [[ $KAFKA_SECURITY != plaintext ]]; then
      echo "start.sh: the three-broker cluster is plaintext only; --secure runs a single broker" >&2
      exit 2
    fi
    "$KAFKA_INFRA_DIR/install.sh"
    exec "$KAFKA_INFRA_DIR/cluster.sh" start
    ;;
  *) echo "start.sh: --brokers (KAFKA_BROKERS_COUNT) must be 1 or 3, not \"$brokers\"" >&2; exit 2 ;;
esac
case "$KAFKA_SECURITY" in
  plaintext | sasl_ssl) ;;
  *) echo "start.sh: KAFKA_SECURITY must be plaintext or sasl_ssl, not \"$KAFKA_SECURITY\"" >&2; exit 2 ;;
esac
secure=0
if [[ $KAFKA_SECURITY == sasl_ssl ]]; then
  secure=1
  . "$KAFKA_INFRA_DIR/secure.sh"
fi

"$KAFKA_INFRA_DIR/install.sh"

if [[ -f "$KAFKA_RUN_DIR/nodes" ]]; then
  echo "start.sh: $KAFKA_RUN_DIR holds a three-broker cluster; stop it first (infra/kafka/stop.sh)" >&2
  exit 1
fi
if kafka_pid_alive && kafka_port_open "$KAFKA_PORT"; then
  running="$(cat "$KAFKA_RUN_DIR/security" 2>/dev/null || echo plaintext)"
  if [[ $running != "$KAFKA_SECURITY" ]]; then
    echo "start.sh: the broker running on port $KAFKA_PORT (pid $(cat "$KAFKA_PID_FILE")) is $running, not $KAFKA_SECURITY; stop it first (infra/kafka/stop.sh)" >&2
    exit 1
  fi
  echo "start.sh: reusing running broker (pid $(cat "$KAFKA_PID_FILE"))" >&2
  echo "KAFKA_BROKERS=$KAFKA_BROKERS"
  if ((secure)); then kafka_secure_report; fi
  exit 0
fi
for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
  if kafka_port_open "$port"; then
    echo "start.sh: 127.0.0.1:$port is already in use by another process; set KAFKA_PORT to a free port" >&2
    exit 1
  fi
done

# A previous broker that died leaves its data behind; a throwaway broker starts empty —
# unless --keep-data: a restart (after a kill, in fault tests) on the data and cluster id it
# had (formatting below leaves formatted storage alone).
if ((keep_data)); then
  rm -f "$KAFKA_PID_FILE" "$KAFKA_RUN_DIR/security"
else
  rm -rf "$KAFKA_RUN_DIR/data" "$KAFKA_PID_FILE" "$KAFKA_RUN_DIR/security"
fi
mkdir -p "$KAFKA_RUN_DIR/data" "$KAFKA_RUN_DIR/logs"

# A secured broker's server.properties holds the controller listener's password: 0600 from the start.
rm -f "$KAFKA_RUN_DIR/server.properties"
(umask 077; : >"$KAFKA_RUN_DIR/server.properties")
cat >>"$KAFKA_RUN_DIR/server.properties" <<PROPS
# Written by infra/kafka/start.sh: a single-node KRaft test broker. Not for production.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
log.dirs=$KAFKA_RUN_DIR/data

PROPS
kafka_test_props 1 >>"$KAFKA_RUN_DIR/server.properties"
if ((secure)); then
  kafka_secure_prepare
else
  cat >>"$KAFKA_RUN_DIR/server.properties" <<PROPS

listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
PROPS
fi

# The broker logs to a file (stdout only gets JVM crashes); the tools log warnings to stderr.
cat >"$KAFKA_RUN_DIR/log4j2.properties" <<PROPS
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $KAFKA_RUN_DIR/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
PROPS
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

# A random cluster id (16 random bytes, base64url without padding, the format of Kafka's Uuid),
# made in bash to save a JVM start. One draw in 64 begins with "-", which a command line reads
# as an option: Kafka's own Uuid.randomUuid() draws again then, and so does this. The id is
# also passed as --cluster-id=ID, so one given in KAFKA_CLUSTER_ID is taken whatever it starts with.
new_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ $id == -* ]] || { echo "$id"; return; }
  done
}
cluster_id="${KAFKA_CLUSTER_ID:-$(new_cluster_id)}"
format_args=(kafka.tools.StorageTool format --ignore-formatted "--cluster-id=$cluster_id" --config "$KAFKA_RUN_DIR/server.properties")
if ((secure)); then
  # The SCRAM users are created here, at format time. Their passwords reach the storage tool in
  # a Java argument file (0600, removed after; the launcher expands it, ps shows only its name).
  (umask 077; { printf '"%s"\n' "${format_args[@]}"; cat "$KAFKA_SECRETS_DIR/format.args"; } >"$KAFKA_SECRETS_DIR/format.argfile")
  format_args=("@$KAFKA_SECRETS_DIR/format.argfile")
fi
if ((keep_data)) && [[ -f "$KAFKA_RUN_DIR/data/meta.properties" ]]; then
  : # formatted by the broker being restarted: its cluster id stays
else kafka_tool "${format_args[@]}" >"$KAFKA_RUN_DIR/logs/format.log" 2>&1; fi || {
  if ((secure)); then rm -f "$KAFKA_SECRETS_DIR/format.args" "$KAFKA_SECRETS_DIR/format.argfile"; fi
  cat "$KAFKA_RUN_DIR/logs/format.log" >&2; echo "start.sh: formatting storage failed" >&2; exit 1; }
if ((secure)); then rm -f "$KAFKA_SECRETS_DIR/format.args" "$KAFKA_SECRETS_DIR/format.argfile"; fi

# setsid: the broker outlives this script and is not killed by the caller's Ctrl-C or job control.
# shellcheck disable=SC2086
setsid java $KAFKA_HEAP_OPTS -server $KAFKA_GC_OPTS \
  -Xlog:gc:file="$KAFKA_RUN_DIR/logs/gc.log":time,uptime,level,tags:filecount=2,filesize=20M \
  -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
  -Dlog4j2.configurationFile="$KAFKA_RUN_DIR/log4j2.properties" \
  -Dkafka.logs.dir="$KAFKA_RUN_DIR/logs" \
  -cp "$KAFKA_CLASSPATH" kafka.Kafka "$KAFKA_RUN_DIR/server.properties" \
  >"$KAFKA_RUN_DIR/logs/stdout.log" 2>&1 </dev/null &
echo $! >"$KAFKA_PID_FILE"

fail() {
  echo "start.sh: $1; last lines of $KAFKA_RUN_DIR/logs/server.log:" >&2
  tail -n 30 "$KAFKA_RUN_DIR/logs/server.log" "$KAFKA_RUN_DIR/logs/stdout.log" >&2 2>/dev/null || true
  exit 1
}

# Ready = the port accepts connections AND a Metadata request (list topics) succeeds, which
# only happens once the broker has caught up with the controller and is unfenced.
deadline=$((SECONDS + KAFKA_START_TIMEOUT_S))
until kafka_port_open "$KAFKA_PORT"; do
  kafka_pid_alive || fail "the broker exited during start-up"
  ((SECONDS < deadline)) || { kill "$(cat "$KAFKA_PID_FILE")" 2>/dev/null || true; fail "the broker did not open port $KAFKA_PORT within ${KAFKA_START_TIMEOUT_S}s"; }
  sleep 0.2
done
probe_config=/dev/null
if ((secure)); then probe_config="$KAFKA_ADMIN_JAVA_CONFIG"; fi
until kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BROKERS" --list \
  --command-config "$probe_config" >/dev/null 2>"$KAFKA_RUN_DIR/logs/probe.log"; do
  kafka_pid_alive || fail "the broker exited during start-up"
  ((SECONDS < deadline)) || { kill "$(cat "$KAFKA_PID_FILE")" 2>/dev/null || true; fail "the broker did not answer a metadata request within ${KAFKA_START_TIMEOUT_S}s"; }
  sleep 0.5
done

echo "$KAFKA_SECURITY" >"$KAFKA_RUN_DIR/security"
if ((secure)); then
  { kafka_principals | while read -r p; do [[ $p == admin ]] || kafka_acl_commands "$p"; done; } | kafka_secure_setup 2>"$KAFKA_RUN_DIR/logs/acls.log" || {
    cat "$KAFKA_RUN_DIR/logs/acls.log" >&2; kill "$(cat "$KAFKA_PID_FILE")" 2>/dev/null || true; echo "start.sh: creating the ACLs failed; the broker was stopped" >&2; exit 1; }
fi

echo "start.sh: Kafka $(ls "$KAFKA_LIBS_DIR" | sed -n 's/^kafka_2.13-\(.*\)\.jar$/\1/p') running (pid $(cat "$KAFKA_PID_FILE"), data in $KAFKA_RUN_DIR/data)" >&2
echo "KAFKA_BROKERS=$KAFKA_BROKERS"
if ((secure)); then kafka_secure_report; fi
