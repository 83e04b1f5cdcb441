# The secured broker's pieces (SASL_SSL + SCRAM-SHA-512 + ACLs), sourced by start.sh and
# add-principal.sh after env.sh. Everything secret is written under $KAFKA_RUN_DIR with umask
# 077 (directories 0700, files 0600) and never passed on a command line: the storage tool gets
# its SCRAM credentials from a Java argument file, SecureSetup.java reads them from stdin.
#   KAFKA_AGENTS ("test")     agent ids to make principals agent-<id> for, space-separated
#   KAFKA_WATCHDOGS ("test")  watchdog hosts to make principals watchdog-<host> for
KAFKA_SECRETS_DIR="$KAFKA_RUN_DIR/secrets"
KAFKA_CLIENTS_DIR="$KAFKA_RUN_DIR/clients"
KAFKA_ACLS_FILE="$KAFKA_INFRA_DIR/acls.txt"
KAFKA_ADMIN_JAVA_CONFIG="$KAFKA_SECRETS_DIR/admin.java.properties"
KAFKA_AGENTS="${KAFKA_AGENTS-test}"
KAFKA_WATCHDOGS="${KAFKA_WATCHDOGS-test}"

# A principal name Kafka, the SCRAM format syntax and a file name all take as is.
kafka_valid_principal() {
  [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$ ]]
}

# The role whose ACLs a principal gets: agent-<id> → agent, watchdog-<host> → watchdog, else itself.
kafka_role_of() {
  case "$1" in
    agent-*) echo agent ;;
    watchdog-*) echo watchdog ;;
    *) echo "$1" ;;
  esac
}

# Every principal start.sh makes: the admin (super user), one per stage role of acls.txt, one
# per test agent and watchdog. The broker's own principal is not listed (it has no client config).
kafka_principals() {
  echo admin
  awk '!/^#/ && NF == 5 && $1 != "*" && $1 != "agent" && $1 != "watchdog" { print $1 }' "$KAFKA_ACLS_FILE" | awk '!seen[$0]++'
  local x
  for x in $KAFKA_AGENTS; do echo "agent-$x"; done
  for x in $KAFKA_WATCHDOGS; do echo "watchdog-$x"; done
}

# 32 random bytes, base64url without padding: safe in properties files, SCRAM syntax and JAAS quotes.
kafka_new_password() {
  head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

# The ACL commands (SecureSetup.java's "acl" lines) of PRINCIPAL, from acls.txt.
kafka_acl_commands() {
  local principal=$1 role
  role="$(kafka_role_of "$principal")"
  awk -v role="$role" -v p="User:$principal" '!/^#/ && NF == 5 && ($1 == role || $1 == "*") { print "acl", p, $2, $3, $4, $5 }' "$KAFKA_ACLS_FILE"
}

# The client configuration of PRINCIPAL with PASSWORD, in librdkafka's properties format (kcat -F,
# Cordon's kafka.clientConfig): $KAFKA_CLIENTS_DIR/<principal>.properties, mode 0600.
kafka_write_client_config() {
  local principal=$1 password=$2 file="$KAFKA_CLIENTS_DIR/$1.properties"
  (
    umask 077
    cat >"$file.tmp" <<PROPS
# The Kafka client configuration of principal $principal on the test broker $KAFKA_BROKERS,
# written by infra/kafka (librdkafka properties: kcat -F FILE, Cordon's kafka.clientConfig).
bootstrap.servers=$KAFKA_BROKERS
security.protocol=SASL_SSL
sasl.mechanisms=SCRAM-SHA-512
sasl.username=$principal
sasl.password=$password
ssl.ca.location=$KAFKA_SECRETS_DIR/ca.pem
PROPS
    mv "$file.tmp" "$file"
  )
}

# The password of PRINCIPAL, read back from its client config.
kafka_password_of() {
  sed -n 's/^sasl\.password=//p' "$KAFKA_CLIENTS_DIR/$1.properties"
}

# A CA and a broker certificate for 127.0.0.1 and localhost (30 days), the broker's PEM
# keystore (PKCS#8 key + chain, as Kafka's ssl.keystore.type=PEM takes it).
kafka_make_tls() {
  local d=$KAFKA_SECRETS_DIR
  command -v openssl >/dev/null || { echo "start.sh: openssl not found; the secured broker needs it for its certificates" >&2; return 1; }
  (
    umask 077
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
      -subj "/CN=Cordon test CA $KAFKA_PORT" -keyout "$d/ca.key" -out "$d/ca.pem" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
      -keyout "$d/broker.key" -out "$d/broker.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >"$d/broker.ext"
    openssl x509 -req -in "$d/broker.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 30 \
      -extfile "$d/broker.ext" -out "$d/broker.crt" 2>/dev/null
    openssl pkcs8 -topk8 -nocrypt -in "$d/broker.key" -out "$d/broker.pk8"
    cat "$d/broker.pk8" "$d/broker.crt" "$d/ca.pem" >"$d/broker.keystore.pem"
    rm -f "$d/broker.csr" "$d/broker.ext" "$d/broker.key" "$d/ca.srl"
  ) || { echo "start.sh: openssl could not make the test certificates" >&2; return 1; }
}

# Secrets, certificates and client configs for a fresh secured broker; appends the security
# settings to server.properties and writes the storage tool's SCRAM argument file.
kafka_secure_prepare() {
  rm -rf "$KAFKA_SECRETS_DIR" "$KAFKA_CLIENTS_DIR"
  mkdir -m 700 -p "$KAFKA_SECRETS_DIR" "$KAFKA_CLIENTS_DIR"
  kafka_make_tls
  local broker_password admin_password p
  broker_password="$(kafka_new_password)"
  (
    umask 077
    : >"$KAFKA_SECRETS_DIR/format.args"
    echo "--add-scram" >>"$KAFKA_SECRETS_DIR/format.args"
    echo "SCRAM-SHA-512=[name=broker,password=$broker_password]" >>"$KAFKA_SECRETS_DIR/format.args"
  )
  for p in $(kafka_principals); do
    kafka_valid_principal "$p" || { echo "start.sh: \"$p\" is not a usable principal name (letters, digits, . _ -)" >&2; return 1; }
    kafka_write_client_config "$p" "$(kafka_new_password)"
    printf -- '--add-scram\nSCRAM-SHA-512=[name=%s,password=%s]\n' "$p" "$(kafka_password_of "$p")" >>"$KAFKA_SECRETS_DIR/format.args"
  done
  admin_password="$(kafka_password_of admin)"
  (
    umask 077
    cat >"$KAFKA_ADMIN_JAVA_CONFIG" <<PROPS
# The admin principal for Kafka's Java tools (kafka-topics.sh --command-config, SecureSetup.java).
bootstrap.servers=$KAFKA_BROKERS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin_password";
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_SECRETS_DIR/ca.pem
PROPS
    cat >>"$KAFKA_RUN_DIR/server.properties" <<PROPS

# Secured (start.sh --secure): clients only on SASL_SSL with SCRAM-SHA-512; the controller
# listener stays on 127.0.0.1 and takes only the broker itself (SASL PLAIN, a user defined in
# this file, which is why it is 0600). Nothing is allowed without an ACL.
listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$broker_password";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="$broker_password" user_broker="$broker_password";
ssl.keystore.type=PEM
ssl.keystore.location=$KAFKA_SECRETS_DIR/broker.keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_SECRETS_DIR/ca.pem
ssl.client.auth=none
ssl.endpoint.identification.algorithm=https
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:broker
PROPS
  )
}

# Run SecureSetup.java against the running broker with the commands on stdin.
kafka_secure_setup() {
  # shellcheck disable=SC2086
  java $KAFKA_TOOL_JAVA_OPTS -cp "$KAFKA_CLASSPATH" "$KAFKA_INFRA_DIR/SecureSetup.java" "$KAFKA_ADMIN_JAVA_CONFIG"
}

# Print where the client configs are (stderr: people) and the shell lines (stdout: eval).
kafka_secure_report() {
  echo "start.sh: secured (SASL_SSL, SCRAM-SHA-512, ACLs from infra/kafka/acls.txt); client configs, one per principal:" >&2
  local f
  for f in "$KAFKA_CLIENTS_DIR"/*.properties; do echo "  $f" >&2; done
  echo "KAFKA_SECURITY=sasl_ssl"
  echo "KAFKA_CLIENT_CONFIG_DIR=$KAFKA_CLIENTS_DIR"
  echo "KAFKA_CA_FILE=$KAFKA_SECRETS_DIR/ca.pem"
}
