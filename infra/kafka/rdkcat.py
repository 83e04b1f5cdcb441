"""kcat's flags on a librdkafka that can authenticate to Kafka 4 (>= 2.6.1; librdkafka#4895).

The secured test broker (infra/kafka/start.sh --secure) writes one librdkafka .properties client
config per principal; kcat reads them with -F, but Debian 12's kcat links librdkafka 2.0.2, whose
SCRAM Kafka 4 refuses. This is the same librdkafka configuration handed to confluent-kafka (its
wheel bundles a current librdkafka), with the few kcat modes the tests use:

  rdkcat -V                                       versions (librdkafka's first)
  rdkcat -F FILE [-b BROKERS] -L [-t TOPIC]       metadata: brokers, topics
  rdkcat -F FILE [-b BROKERS] -P -t TOPIC [-K D]  produce stdin's lines (key D value with -K)
  rdkcat -F FILE [-b BROKERS] -C -t TOPIC [-o beginning|end] [-c N] -e
                                                  consume to the end (or N messages), key\\tvalue

Exit status: 0 when every record was delivered (-P) or the request answered (-L, -C); 1 with the
broker's error on stderr — its name first (TOPIC_AUTHORIZATION_FAILED, SASL_AUTHENTICATION_FAILED,
…) as kcat prints it; 2 for bad usage or an unreadable config.
"""

import argparse
import sys

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient


def fail(msg, code=1):
    sys.stderr.write(f"% ERROR: {msg}\n")
    sys.exit(code)


def read_properties(path):
    """A librdkafka/kcat client config: key=value lines, # and ! comments, blank lines."""
    conf = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for n, raw in enumerate(fh, 1):
                line = raw.strip()
                if not line or line[0] in "#!":
                    continue
                key, sep, value = line.partition("=")
                if not sep:
                    fail(f"{path}:{n}: expected key=value", 2)
                conf[key.strip()] = value.strip()
    except OSError as err:
        fail(f"{path}: {err.strerror}", 2)
    return conf


def describe(err):
    """A KafkaError as kcat shows it: its name, then librdkafka's text."""
    if isinstance(err, KafkaException):
        err = err.args[0]
    if isinstance(err, KafkaError):
        return f"{err.name()}: {err.str()}"
    return str(err)


def metadata(conf, topic):
    errors = []
    admin = AdminClient({**conf, "error_cb": errors.append})
    try:
        md = admin.list_topics(topic=topic, timeout=10)
    except KafkaException as err:
        # the broker's reason (a refused SASL login) comes through error_cb, the timeout after it
        for e in errors:
            sys.stderr.write(f"% ERROR: {describe(e)}\n")
        fail(f"Failed to acquire metadata: {describe(err)}")
    print(f"Metadata for {topic or 'all topics'} (from broker {md.orig_broker_id}: {md.orig_broker_name}):")
    print(f" {len(md.brokers)} brokers:")
    for b in md.brokers.values():
        print(f"  broker {b.id} at {b.host}:{b.port}")
    print(f" {len(md.topics)} topics:")
    for name, t in sorted(md.topics.items()):
        if t.error is not None:
            print(f'  topic "{name}" with {len(t.partitions)} partitions: {describe(t.error)}')
            if topic is not None:
                sys.exit(1)
        else:
            print(f'  topic "{name}" with {len(t.partitions)} partitions')


def produce(conf, topic, key_delim):
    failures = []

    def delivered(err, _msg):
        if err is not None:
            failures.append(err)

    p = Producer({**conf, "error_cb": lambda err: failures.append(err) if err.fatal() else None})
    for raw in sys.stdin.read().splitlines():
        key, value = None, raw
        if key_delim is not None:
            key, sep, rest = raw.partition(key_delim)
            value = rest if sep else raw
            key = key if sep else None
        p.produce(topic, value=value.encode(), key=key.encode() if key is not None else None, on_delivery=delivered)
        p.poll(0)
    left = p.flush(30)
    if left:
        failures.append(f"{left} message(s) not delivered in 30 s")
    if failures:
        for f in failures:
            sys.stderr.write(f"% Delivery failed for message: {describe(f)}\n")
        sys.exit(1)


def consume(conf, topic, offset, count):
    c = Consumer({**conf, "group.id": "cordon-reader-rdkcat", "enable.auto.commit": False, "enable.partition.eof": True})
    md = c.list_topics(topic=topic, timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        fail(f"Topic {topic} error: {describe(t.error) if t else 'unknown topic'}")
    start = confluent_kafka.OFFSET_BEGINNING if offset == "beginning" else confluent_kafka.OFFSET_END
    parts = [TopicPartition(topic, p, start) for p in t.partitions]
    c.assign(parts)
    at_end, seen = set(), 0
    try:
        while len(at_end) < len(parts) and (count is None or seen < count):
            m = c.poll(10)
            if m is None:
                fail("no answer from the broker in 10 s")
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(m.partition())
                    continue
                fail(f"Consume error: {describe(m.error())}")
            key = m.key().decode(errors="replace") if m.key() is not None else ""
            value = m.value().decode(errors="replace") if m.value() is not None else ""
            print(f"{key}\t{value}")
            seen += 1
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser(prog="rdkcat", add_help=True)
    ap.add_argument("-V", action="store_true", dest="version")
    ap.add_argument("-F", dest="config")
    ap.add_argument("-b", dest="brokers")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("-L", action="store_const", const="L", dest="mode")
    mode.add_argument("-P", action="store_const", const="P", dest="mode")
    mode.add_argument("-C", action="store_const", const="C", dest="mode")
    ap.add_argument("-t", dest="topic")
    ap.add_argument("-K", dest="key_delim")
    ap.add_argument("-o", dest="offset", choices=["beginning", "end"], default="beginning")
    ap.add_argument("-c", dest="count", type=int)
    ap.add_argument("-e", action="store_true", dest="exit_at_end")
    a = ap.parse_args()
    if a.version:
        print(f"librdkafka {confluent_kafka.libversion()[0]} (confluent-kafka {confluent_kafka.__version__})")
        return
    conf = read_properties(a.config) if a.config else {}
    if a.brokers:
        conf["bootstrap.servers"] = a.brokers
    if "bootstrap.servers" not in conf:
        fail("no brokers: -b BROKERS or bootstrap.servers in the -F file", 2)
    if a.mode == "L":
        metadata(conf, a.topic)
    elif a.mode == "P":
        if not a.topic:
            fail("-P needs -t TOPIC", 2)
        produce(conf, a.topic, a.key_delim)
    elif a.mode == "C":
        if not a.topic or not a.exit_at_end:
            fail("-C needs -t TOPIC and -e (read to the end and exit)", 2)
        consume(conf, a.topic, a.offset, a.count)
    else:
        fail("one of -L, -P, -C, -V", 2)


if __name__ == "__main__":
    main()
