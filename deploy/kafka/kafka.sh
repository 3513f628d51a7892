#!/usr/bin/env bash
# Run a local single-node Apache Kafka (KRaft: broker and controller in one JVM) on 127.0.0.1, no Docker needed.
#
#   bash deploy/kafka/kafka.sh start    start it and return once it accepts clients (a no-op when it runs)
#   bash deploy/kafka/kafka.sh stop     stop it and delete its data (harmless when none runs)
#   bash deploy/kafka/kafka.sh status   say whether it runs (exit 0 if it does, 1 if not)
#
# Environment:
#   KAFKA_PORT              client port (default 9092)
#   KAFKA_CONTROLLER_PORT   KRaft controller port (default KAFKA_PORT + 1)
#   KAFKA_HOME              an unpacked Apache Kafka distribution to use instead of fetching the jars
#   KAFKA_HEAP_OPTS         JVM heap (default -Xmx1g -Xms256m)
#   KAFKA_START_TIMEOUT     seconds `start` waits for the broker (default 120)
#
# A second listener with TLS and SASL, to try the worker's KAFKA_SECURITY_PROTOCOL=SASL_SSL. The PLAINTEXT
# listener on KAFKA_PORT stays as it is; the controller and the broker itself keep using it.
#   KAFKA_SASL_SSL_PORT          port of a SASL_SSL listener on 127.0.0.1 (default: none, no such listener)
#   KAFKA_SSL_KEYSTORE           the broker's key and certificate chain; clients check that the certificate
#                                names 127.0.0.1 (subjectAltName IP:127.0.0.1)
#   KAFKA_SSL_KEYSTORE_PASSWORD  password of the keystore and of the key in it
#   KAFKA_SSL_KEYSTORE_TYPE      PKCS12 (default) or JKS
#   KAFKA_SASL_USERS             user:password[,user:password...]; each user may log in with PLAIN,
#                                SCRAM-SHA-256 or SCRAM-SHA-512
#   KAFKA_SASL_USERS_FILE        instead of KAFKA_SASL_USERS: a file of user:password lines
# Passwords must not contain whitespace, quotes, backslashes, commas or brackets. The listener and its users
# are fixed when the broker starts (the SCRAM credentials when its data directory is formatted, that is on
# the first start after a stop): stop the broker to change them. Users authenticate; no ACLs are enforced.
#
# Without KAFKA_HOME the broker's jars come from Maven Central (deploy/kafka/pom.xml pins the version) into
# .cache/kafka/<version>/libs, once. Needs Java 17+ and, for that first fetch, Maven.
# Everything else lives in .cache/kafka/ of the checkout: data-<port>/, broker-<port>.pid,
# broker-<port>.log (the broker's log), broker-<port>.out (its console: warnings, JVM errors).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

PORT="${KAFKA_PORT:-9092}"
[[ "$PORT" =~ ^[0-9]{1,5}$ ]] || { echo "kafka.sh: error: KAFKA_PORT is not a TCP port: '$PORT'" >&2; exit 1; }
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((10#$PORT + 1))}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
SASL_SSL_PORT="${KAFKA_SASL_SSL_PORT:-}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1g -Xms256m}"

VERSION="$(sed -n 's:.*<kafka\.version>\(.*\)</kafka\.version>.*:\1:p' "$HERE/pom.xml" | head -n 1)"
CACHE="$ROOT/.cache/kafka"
DIST="$CACHE/$VERSION"
LIBS="$DIST/libs"
MARKER="$DIST/.complete"
DATA="$CACHE/data-$PORT"
PIDFILE="$CACHE/broker-$PORT.pid"
LOG="$CACHE/broker-$PORT.log"
OUT="$CACHE/broker-$PORT.out"
CONFIG="$CACHE/server-$PORT.properties"

say() { echo "kafka.sh: $*"; }
die() {
    echo "kafka.sh: error: $*" >&2
    exit 1
}

for p in "$PORT" "$CONTROLLER_PORT"; do
    if ! [[ "$p" =~ ^[0-9]{1,5}$ ]] || ((p < 1 || p > 65535)); then
        die "not a TCP port: '$p' (KAFKA_PORT / KAFKA_CONTROLLER_PORT)"
    fi
done
[[ "$PORT" != "$CONTROLLER_PORT" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT are both $PORT"
if [[ -n "$SASL_SSL_PORT" ]]; then
    if ! [[ "$SASL_SSL_PORT" =~ ^[0-9]{1,5}$ ]] || ((SASL_SSL_PORT < 1 || SASL_SSL_PORT > 65535)); then
        die "not a TCP port: '$SASL_SSL_PORT' (KAFKA_SASL_SSL_PORT)"
    fi
    [[ "$SASL_SSL_PORT" != "$PORT" && "$SASL_SSL_PORT" != "$CONTROLLER_PORT" ]] ||
        die "KAFKA_SASL_SSL_PORT ($SASL_SSL_PORT) must differ from KAFKA_PORT and KAFKA_CONTROLLER_PORT"
fi
[[ -n "$VERSION" ]] || die "no <kafka.version> in $HERE/pom.xml"

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# True when whatever listens on 127.0.0.1:$1 answers a Kafka ApiVersions request (v0, correlation id 42).
answers_as_kafka() {
    local reply
    reply="$(timeout 3 bash -c "
        exec 3<>/dev/tcp/127.0.0.1/$1 || exit 1
        printf '\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x2a\xff\xff' >&3
        head -c 8 <&3 | od -An -tx1" 2>/dev/null | tr -d ' \n')" || true
    # 4 bytes of length, then the correlation id echoed back.
    [[ "${reply:8:8}" == "0000002a" ]]
}

# The pid of the broker this script started on $PORT, if it is alive; nothing otherwise.
broker_pid() {
    local pid
    [[ -f "$PIDFILE" ]] || return 0
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    # Guard against a recycled pid: the process must be a JVM running our config file.
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$CONFIG" || return 0
    fi
    echo "$pid"
}

log_tail() {
    local f
    for f in "$LOG" "$OUT"; do
        [[ -s "$f" ]] || continue
        echo "--- last lines of $f" >&2
        tail -n 40 "$f" >&2
    done
}

started_in_log() {
    cat "$LOG" "$OUT" 2>/dev/null | grep -q "Kafka Server started"
}

# Serialise start/stop of one port (two `make kafka` at once must not start two brokers).
lock() {
    mkdir -p "$CACHE"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$CACHE/.lock-$1"
        flock 9
    fi
}

use_distribution() {
    [[ -n "${KAFKA_HOME:-}" ]] || return 1
    [[ -x "$KAFKA_HOME/bin/kafka-server-start.sh" && -x "$KAFKA_HOME/bin/kafka-storage.sh" && -d "$KAFKA_HOME/libs" ]] ||
        die "KAFKA_HOME=$KAFKA_HOME is not an unpacked Apache Kafka distribution (no bin/kafka-server-start.sh); unset it to fetch Kafka $VERSION"
}

check_java() {
    command -v java >/dev/null 2>&1 || die "java not found: Kafka needs a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless)"
    local v
    v="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)"
    [[ -z "$v" || "$v" -ge 17 ]] || die "Kafka $VERSION needs Java 17+, found Java $v ($(command -v java))"
}

# Fetch the broker's jars from Maven Central into $LIBS, once; the marker is written after a complete copy.
fetch() {
    [[ -f "$MARKER" ]] && return 0
    command -v mvn >/dev/null 2>&1 || die "Kafka $VERSION is not in $LIBS yet and mvn is not installed: install Maven (apt-get install maven), or set KAFKA_HOME to an unpacked Kafka distribution"
    mkdir -p "$DIST"
    exec 8>"$DIST/.lock"
    command -v flock >/dev/null 2>&1 && flock 8
    if [[ ! -f "$MARKER" ]]; then
        say "fetching Kafka $VERSION from Maven Central into ${LIBS#"$ROOT"/}"
        local tmp="$DIST/libs.tmp.$$"
        rm -rf "$tmp"
        if ! mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy-dependencies \
            -DoutputDirectory="$tmp" -DincludeScope=runtime >"$DIST/mvn.log" 2>&1; then
            rm -rf "$tmp"
            cat "$DIST/mvn.log" >&2
            die "mvn could not fetch Kafka $VERSION (output above, also in ${DIST#"$ROOT"/}/mvn.log); Maven Central must be reachable"
        fi
        rm -rf "$LIBS"
        mv "$tmp" "$LIBS"
        touch "$MARKER"
    fi
    exec 8>&-
}

# The SASL users, one user:password a line, from KAFKA_SASL_USERS_FILE or KAFKA_SASL_USERS, checked.
sasl_users() {
    local users entry name password
    if [[ -n "${KAFKA_SASL_USERS_FILE:-}" ]]; then
        [[ -r "$KAFKA_SASL_USERS_FILE" ]] || die "KAFKA_SASL_USERS_FILE ($KAFKA_SASL_USERS_FILE) is not a readable file"
        users="$(grep -v '^[[:space:]]*$' "$KAFKA_SASL_USERS_FILE" | tr '\n' ',')"
    else
        users="${KAFKA_SASL_USERS:-}"
    fi
    [[ -n "${users//,/}" ]] ||
        die "KAFKA_SASL_SSL_PORT is set but there are no users: set KAFKA_SASL_USERS=user:password or KAFKA_SASL_USERS_FILE"
    local entries
    IFS=, read -ra entries <<<"$users"
    for entry in "${entries[@]}"; do
        [[ -n "$entry" ]] || continue
        name="${entry%%:*}"
        password="${entry#*:}"
        [[ "$entry" == *:* && "$name" =~ ^[A-Za-z0-9._-]+$ ]] ||
            die "KAFKA_SASL_USERS: '$name' is not user:password with a user of letters, digits, '.', '_' or '-'"
        [[ -n "$password" && "$password" != *[[:space:]\"\'\\,\[\]]* ]] ||
            die "KAFKA_SASL_USERS: the password of '$name' is empty or has whitespace, quotes, backslashes, commas or brackets"
        echo "$name:$password"
    done
}

# The broker properties of the SASL_SSL listener: its keystore, its mechanisms and their users.
sasl_ssl_properties() {
    local keystore="${KAFKA_SSL_KEYSTORE:-}" password="${KAFKA_SSL_KEYSTORE_PASSWORD:-}"
    local type="${KAFKA_SSL_KEYSTORE_TYPE:-PKCS12}" users plain_users="" line
    [[ -n "$keystore" && -r "$keystore" ]] ||
        die "KAFKA_SASL_SSL_PORT is set but KAFKA_SSL_KEYSTORE ('$keystore') is not a readable keystore"
    [[ -n "$password" && "$password" != *[[:space:]\\]* ]] ||
        die "KAFKA_SASL_SSL_PORT is set but KAFKA_SSL_KEYSTORE_PASSWORD is empty or has whitespace or backslashes"
    users="$(sasl_users)" || exit 1
    while IFS= read -r line; do
        plain_users+=" user_${line%%:*}=\"${line#*:}\""
    done <<<"$users"
    local prefix=listener.name.sasl_ssl
    echo
    echo "# The SASL_SSL listener on 127.0.0.1:$SASL_SSL_PORT (KAFKA_SASL_SSL_PORT), added by kafka.sh."
    echo "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
    echo "$prefix.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;"
    echo "$prefix.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    echo "$prefix.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    echo "$prefix.ssl.keystore.type=$type"
    echo "$prefix.ssl.keystore.location=$(realpath "$keystore")"
    echo "$prefix.ssl.keystore.password=$password"
    echo "$prefix.ssl.key.password=$password"
}

render_config() {
    mkdir -p "$CACHE"
    local listener=() properties=""
    if [[ -n "$SASL_SSL_PORT" ]]; then
        listener=(
            -e "/^listeners=/s|\$|,SASL_SSL://127.0.0.1:$SASL_SSL_PORT|"
            -e "/^advertised.listeners=/s|\$|,SASL_SSL://127.0.0.1:$SASL_SSL_PORT|"
            -e "/^listener.security.protocol.map=/s|\$|,SASL_SSL:SASL_SSL|"
        )
        properties="$(sasl_ssl_properties)" || exit 1
    fi
    # The config may hold passwords: readable by this user only.
    rm -f "$CONFIG"
    (
        umask 077
        sed -e "s|@KAFKA_PORT@|$PORT|g" \
            -e "s|@KAFKA_CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
            -e "s|@DATA_DIR@|$DATA|g" \
            ${listener[@]+"${listener[@]}"} \
            "$HERE/server.properties" >"$CONFIG"
        [[ -z "$properties" ]] || echo "$properties" >>"$CONFIG"
    )
}

# A random cluster id in Kafka's format (22 characters of URL-safe base64, not starting with '-').
cluster_id() {
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "$id" != -* ]] && break
    done
    echo "$id"
}

format_storage() {
    [[ -f "$DATA/meta.properties" ]] && return 0
    rm -rf "$DATA"
    local id scram=() users line mechanism
    id="$(cluster_id)"
    # SCRAM credentials live in the cluster metadata: the format writes them into its first records.
    if [[ -n "$SASL_SSL_PORT" ]]; then
        users="$(sasl_users)" || exit 1
        while IFS= read -r line; do
            for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
                scram+=(--add-scram "$mechanism=[name=${line%%:*},password=${line#*:}]")
            done
        done <<<"$users"
    fi
    if use_distribution; then
        "$KAFKA_HOME/bin/kafka-storage.sh" format -t "$id" -c "$CONFIG" ${scram[@]+"${scram[@]}"} >"$OUT" 2>&1 ||
            { cat "$OUT" >&2; die "formatting $DATA failed"; }
    else
        java -cp "$LIBS/*" -Dlog4j2.configurationFile="$HERE/log4j2.yaml" -Dkafka.broker.log="$LOG" \
            kafka.tools.StorageTool format -t "$id" -c "$CONFIG" ${scram[@]+"${scram[@]}"} >"$OUT" 2>&1 ||
            { cat "$OUT" >&2; die "formatting $DATA failed"; }
    fi
}

launch() {
    : >"$LOG"
    : >"$OUT"
    rm -f "$PIDFILE"
    # The child writes its own pid, then becomes the JVM (exec), so the pid file names the broker itself.
    # setsid: the broker outlives the shell, make or test run that started it (and their Ctrl-C).
    # shellcheck disable=SC2016  # $$, $0 and $@ belong to the inner bash
    local write_pid_exec='echo $$ >"$0"; exec "$@"'
    local detach=()
    command -v setsid >/dev/null 2>&1 && detach=(setsid)
    if use_distribution; then
        local log4j=()
        # A log4j2-based distribution (Kafka 4.x) logs like ours; older ones keep their own config.
        [[ -f "$KAFKA_HOME/config/log4j2.yaml" ]] &&
            log4j=(KAFKA_LOG4J_OPTS="-Dlog4j2.configurationFile=$HERE/log4j2.yaml -Dkafka.broker.log=$LOG")
        env ${log4j[@]+"${log4j[@]}"} KAFKA_HEAP_OPTS="$HEAP_OPTS" LOG_DIR="$CACHE/logs-$PORT" \
            nohup ${detach[@]+"${detach[@]}"} bash -c "$write_pid_exec" "$PIDFILE" \
            "$KAFKA_HOME/bin/kafka-server-start.sh" "$CONFIG" \
            </dev/null >>"$OUT" 2>&1 8>&- 9>&- &
    else
        # shellcheck disable=SC2086  # HEAP_OPTS holds several JVM options
        nohup ${detach[@]+"${detach[@]}"} bash -c "$write_pid_exec" "$PIDFILE" \
            java $HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true \
            -Dlog4j2.configurationFile="$HERE/log4j2.yaml" -Dkafka.broker.log="$LOG" \
            -cp "$LIBS/*" kafka.Kafka "$CONFIG" \
            </dev/null >>"$OUT" 2>&1 8>&- 9>&- &
    fi
}

# Wait until the broker logged that it started and its port accepts connections.
await_ready() {
    local t0=$SECONDS pid=""
    while ((SECONDS - t0 < START_TIMEOUT)); do
        [[ -n "$pid" ]] || pid="$(cat "$PIDFILE" 2>/dev/null || true)"
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            log_tail
            rm -f "$PIDFILE"
            die "the broker on port $PORT exited during start-up (log above)"
        fi
        if [[ -z "$pid" ]] && ((SECONDS - t0 > 15)); then
            log_tail
            die "the broker on port $PORT did not start (no pid file after 15s; log above)"
        fi
        if [[ -n "$pid" ]] && started_in_log && port_open "$PORT" &&
            { [[ -z "$SASL_SSL_PORT" ]] || port_open "$SASL_SSL_PORT"; }; then
            return 0
        fi
        sleep 0.5
    done
    log_tail
    die "the broker on port $PORT did not accept clients within ${START_TIMEOUT}s (log above; pid ${pid:-unknown} left running, stop it with: KAFKA_PORT=$PORT bash deploy/kafka/kafka.sh stop)"
}

# Fail when KAFKA_SASL_SSL_PORT asks for a listener that the broker running on $PORT was started without.
require_running_listener() {
    [[ -n "$SASL_SSL_PORT" ]] || return 0
    if [[ -f "$CONFIG" ]] && grep -q "^listeners=.*SASL_SSL://127.0.0.1:$SASL_SSL_PORT\(,\|\$\)" "$CONFIG"; then
        return 0
    fi
    die "Kafka on 127.0.0.1:$PORT runs without a SASL_SSL listener on $SASL_SSL_PORT; stop it (KAFKA_PORT=$PORT bash deploy/kafka/kafka.sh stop) and start it again with KAFKA_SASL_SSL_PORT set"
}

cmd_start() {
    lock "$PORT"
    local pid
    pid="$(broker_pid)"
    if [[ -n "$pid" ]]; then
        require_running_listener
        if port_open "$PORT"; then
            say "Kafka already running on 127.0.0.1:$PORT (pid $pid)"
            return 0
        fi
        say "Kafka on 127.0.0.1:$PORT (pid $pid) is still starting; waiting"
        await_ready
        say "Kafka running on 127.0.0.1:$PORT (pid $pid)"
        return 0
    fi
    rm -f "$PIDFILE"
    if port_open "$PORT"; then
        if answers_as_kafka "$PORT"; then
            [[ -z "$SASL_SSL_PORT" ]] || port_open "$SASL_SSL_PORT" ||
                die "port $PORT is served by a Kafka broker this script did not start, and nothing listens on KAFKA_SASL_SSL_PORT $SASL_SSL_PORT"
            say "port $PORT is already served by a Kafka broker this script did not start; using it as it is"
            return 0
        fi
        die "port $PORT is taken by something that is not Kafka; free it or choose another KAFKA_PORT"
    fi
    if port_open "$CONTROLLER_PORT"; then
        die "controller port $CONTROLLER_PORT is taken; free it or set KAFKA_CONTROLLER_PORT"
    fi
    if [[ -n "$SASL_SSL_PORT" ]] && port_open "$SASL_SSL_PORT"; then
        die "SASL_SSL port $SASL_SSL_PORT is taken; free it or choose another KAFKA_SASL_SSL_PORT"
    fi

    check_java
    local how
    if use_distribution; then
        how="$KAFKA_HOME"
    else
        fetch
        how="Kafka $VERSION from ${LIBS#"$ROOT"/}"
    fi
    render_config
    format_storage
    local also=""
    [[ -z "$SASL_SSL_PORT" ]] || also=", SASL_SSL on $SASL_SSL_PORT"
    say "starting $how on 127.0.0.1:$PORT (controller $CONTROLLER_PORT$also, log ${LOG#"$ROOT"/})"
    launch
    await_ready
    say "Kafka running on 127.0.0.1:$PORT$also (pid $(broker_pid))"
}

cmd_stop() {
    lock "$PORT"
    local pid
    pid="$(broker_pid)"
    if [[ -n "$pid" ]]; then
        say "stopping Kafka on 127.0.0.1:$PORT (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 30))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "no exit after 30s; killing pid $pid"
            kill -KILL "$pid" 2>/dev/null || true
            while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
        fi
    else
        say "no Kafka started by this script runs on port $PORT"
    fi
    rm -f "$PIDFILE"
    # The data goes with the broker: every `make kafka` starts from an empty cluster (no topics, offsets or
    # consumer groups left over from an earlier run). The log stays for a post-mortem until the next start;
    # the config goes (it may hold passwords), the next start writes it anew.
    rm -rf "$DATA"
    rm -f "$CONFIG"
}

cmd_status() {
    local pid also=""
    pid="$(broker_pid)"
    if [[ -n "$pid" ]] && port_open "$PORT"; then
        [[ ! -f "$CONFIG" ]] ||
            also="$(sed -n 's|^listeners=.*SASL_SSL://127.0.0.1:\([0-9]*\).*|, SASL_SSL on \1|p' "$CONFIG")"
        say "Kafka running on 127.0.0.1:$PORT$also (pid $pid)"
    elif [[ -n "$pid" ]]; then
        say "Kafka starting on 127.0.0.1:$PORT (pid $pid, port not open yet)"
    elif port_open "$PORT" && answers_as_kafka "$PORT"; then
        say "a Kafka broker this script did not start answers on 127.0.0.1:$PORT"
    else
        say "Kafka not running on 127.0.0.1:$PORT"
        return 1
    fi
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        echo "usage: bash deploy/kafka/kafka.sh start|stop|status   (port: KAFKA_PORT, default 9092)" >&2
        exit 2
        ;;
esac
