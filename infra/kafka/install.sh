#!/usr/bin/env bash
# Install Apache Kafka (KRaft) from its released jars on Maven Central into infra/kafka/dist/libs.
# Idempotent: a stamp holding the pom's hash makes a second run return at once; editing the
# pom (e.g. bumping kafka.version) reinstalls.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

command -v java >/dev/null || { echo "install.sh: java not found; Kafka 4 needs Java 17+ (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
java_major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
if [[ "${java_major%%.*}" -lt 17 ]]; then
  echo "install.sh: Java $java_major found; Kafka 4 needs Java 17+" >&2; exit 1
fi

stamp="$KAFKA_DIST_DIR/.installed"
want="$(sha256sum "$KAFKA_INFRA_DIR/pom.xml" | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && compgen -G "$KAFKA_LIBS_DIR/kafka_2.13-*.jar" >/dev/null; then
  exit 0
fi

command -v mvn >/dev/null || { echo "install.sh: mvn not found (apt-get install maven)" >&2; exit 1; }
echo "install.sh: fetching Kafka jars from Maven Central into $KAFKA_LIBS_DIR" >&2
mkdir -p "$KAFKA_DIST_DIR"
# Copy into a temp dir and swap, so an interrupted install never leaves a half-filled libs dir
# that the stamp check would accept.
tmp="$(mktemp -d "$KAFKA_DIST_DIR/libs.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# Maven's own output only matters when it fails.
if ! mvn -q -B -Dstyle.color=never -f "$KAFKA_INFRA_DIR/pom.xml" dependency:copy-dependencies \
  -DoutputDirectory="$tmp" -DincludeScope=runtime >"$tmp.log" 2>&1; then
  cat "$tmp.log" >&2; rm -f "$tmp.log"
  echo "install.sh: Maven could not fetch the Kafka jars (is Maven Central reachable?)" >&2
  exit 1
fi
rm -f "$tmp.log"
rm -rf "$KAFKA_LIBS_DIR"
mv "$tmp" "$KAFKA_LIBS_DIR"
trap - EXIT
echo "$want" >"$stamp"
echo "install.sh: installed $(ls "$KAFKA_LIBS_DIR" | grep -c '\.jar$') jars ($(ls "$KAFKA_LIBS_DIR" | grep -o '^kafka_2.13-.*\.jar'))" >&2
