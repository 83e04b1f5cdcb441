#!/usr/bin/env bash
# Add a principal to the secured broker start.sh --secure started (same KAFKA_PORT): a SCRAM
# user with a fresh password, the ACLs of its role in acls.txt, and its client config.
#   infra/kafka/add-principal.sh agent-<id> | watchdog-<host> | <stage name>
# Prints the client config's path. Run again for the same name: a new password (the old one
# stops working), the same ACLs.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
. "$KAFKA_INFRA_DIR/secure.sh"

(($# == 1)) || { echo "usage: add-principal.sh agent-<id>|watchdog-<host>|<stage>" >&2; exit 2; }
principal=$1
kafka_valid_principal "$principal" || { echo "add-principal.sh: \"$principal\" is not a usable principal name (letters, digits, . _ -)" >&2; exit 2; }
[[ $principal != admin && $principal != broker ]] || { echo "add-principal.sh: $principal is made by start.sh" >&2; exit 2; }
kafka_pid_alive && [[ "$(cat "$KAFKA_RUN_DIR/security" 2>/dev/null)" == sasl_ssl ]] || {
  echo "add-principal.sh: no secured broker of start.sh --secure runs on port $KAFKA_PORT" >&2; exit 1; }
acls="$(kafka_acl_commands "$principal")"
grep -qv ' topic prefixed cordon\. DESCRIBE$' <<<"$acls" || {
  echo "add-principal.sh: acls.txt has no role \"$(kafka_role_of "$principal")\" (roles: agent-<id>, watchdog-<host>, or a stage's name)" >&2; exit 2; }
kafka_write_client_config "$principal" "$(kafka_new_password)"
{ echo "scram $principal $(kafka_password_of "$principal")"; echo "$acls"; } | kafka_secure_setup
echo "$KAFKA_CLIENTS_DIR/$principal.properties"
