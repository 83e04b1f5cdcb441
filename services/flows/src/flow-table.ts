import { createHash } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { z } from 'zod';
import type { CordonError } from '@cordon/runtime';
import {
  communityId,
  RECOVERY_MAX_KEYS_PER_PARTITION,
  type FlowEndReason,
  type FlowRecord,
  type Packet,
  type PacketBatch,
  type RecoveryPartitionState,
} from '@cordon/schemas';
import { decodeFrame, flowKey, formatIp, hashFlowKey, IPPROTO, TCP_FLAGS, type IpPacket } from '@cordon/pcap';
import type { FlowTableConfig } from './config.js';
import { ERR_FLOWS_BAD_FRAME, ERR_FLOWS_SNAPSHOT } from './errors.js';

/**
 * The flows stage, pure part: a flow table fed the PacketBatches of one input partition in
 * offset order. It holds no clock and does no I/O; time is the capture time of each sensor's
 * packets, so the same input always gives the same flows (what makes restarts and replays
 * exact).
 *
 * Decisions (see README.md in this service):
 * - A flow is (sensor, outer VLAN, proto, endpoints); the initiator (src) is the sender of
 *   the first packet seen, SYN or not.
 * - Non-first IP fragments carry no ports: they count to the (sensor, vlan, proto, src, dst,
 *   0, 0) flow, the address-pair view tshark's conv,ip takes. No reassembly here (dpi does it).
 * - Non-IP frames (ARP, LLDP, …) are counted (`framesNonIp`), not flows, not errors.
 */

/** What a TCP flow has seen of its close. */
const FIN_TOSERVER = 1;
const FIN_TOCLIENT = 2;

interface Flow {
  sensor: string;
  vm: string | null;
  /** Canonical (direction-free) key bytes; hashFlowKey(key) is the Kafka key. */
  key: Buffer;
  /** The initiator is endpoint A of the canonical key. */
  initiatorIsA: boolean;
  vlan: number;
  proto: number;
  srcIp: string;
  srcPort: number;
  dstIp: string;
  dstPort: number;
  firstUs: number;
  lastUs: number;
  pktsToServer: number;
  pktsToClient: number;
  bytesToServer: number;
  bytesToClient: number;
  flagsToServer: number;
  flagsToClient: number;
  /** FIN_TOSERVER | FIN_TOCLIENT as seen. */
  fins: number;
  /** Community ID v1 of the flow, from its first packet (ICMP: its type and code). */
  communityId: string | null;
}

interface SensorClock {
  /** Newest packet time seen from this sensor. */
  nowUs: number;
  nextSweepUs: number;
}

export interface EmittedFlow {
  /** Kafka key: the symmetric flow hash (same as the packets' key). */
  key: Buffer;
  record: FlowRecord;
}

export interface BadFrame {
  packet: Packet;
  error: CordonError;
}

export interface BatchResult {
  flows: EmittedFlow[];
  badFrames: BadFrame[];
  framesNonIp: number;
  flowsEvicted: number;
}

export class FlowTable {
  /** sensor → (canonical key as latin1 string → flow), in creation order. */
  private readonly sensors = new Map<string, Map<string, Flow>>();
  private readonly clocks = new Map<string, SensorClock>();
  private count = 0;

  constructor(private readonly cfg: FlowTableConfig) {}

  /** Flows currently open. */
  get size(): number {
    return this.count;
  }

  /** Feed one PacketBatch (frames in order); returns the flows that ended and the frames that did not decode. */
  processBatch(batch: PacketBatch): BatchResult {
    const out: BatchResult = { flows: [], badFrames: [], framesNonIp: 0, flowsEvicted: 0 };
    for (const packet of batch.packets) {
      const d = decodeFrame(batch.linktype, packet.frame);
      if (d.kind === 'error') {
        out.badFrames.push({
          packet,
          error: ERR_FLOWS_BAD_FRAME.withCause(d.error, batch.batch_id, packet.seq, d.error.message),
        });
        continue;
      }
      if (d.kind === 'non-ip') {
        out.framesNonIp++;
        // Still a sign of life from the sensor: its clock moves, idle flows expire.
        this.tick(batch.sensor, packet.ts_us, out);
        continue;
      }
      this.packet(batch.sensor, batch.vm, packet, d, out);
    }
    if (batch.end_of_source) this.flushSensor(batch.sensor, out);
    return out;
  }

  /** Close every flow (e.g. on shutdown of a one-shot run); end_reason `end`. */
  flushAll(): EmittedFlow[] {
    const out: BatchResult = { flows: [], badFrames: [], framesNonIp: 0, flowsEvicted: 0 };
    for (const sensor of [...this.sensors.keys()]) this.flushSensor(sensor, out);
    return out.flows;
  }

  private packet(sensor: string, vm: string | null, packet: Packet, p: IpPacket, out: BatchResult): void {
    const ts = packet.ts_us;
    this.tick(sensor, ts, out);
    const { key, swapped } = flowKey(p);
    const mapKey = key.toString('latin1');
    let flows = this.sensors.get(sensor);
    if (!flows) {
      flows = new Map();
      this.sensors.set(sensor, flows);
    }
    const isTcp = p.proto === IPPROTO.TCP;
    const pureSyn = isTcp && (p.tcpFlags & (TCP_FLAGS.SYN | TCP_FLAGS.ACK)) === TCP_FLAGS.SYN;
    let flow = flows.get(mapKey);
    if (flow) {
      if (ts - flow.lastUs > this.timeoutUs(flow)) {
        this.close(flows, mapKey, flow, idleReason(flow), out);
        flow = undefined;
      } else if (pureSyn && flow.fins !== 0) {
        // A new connection reusing the ports of one that was closing.
        this.close(flows, mapKey, flow, 'fin', out);
        flow = undefined;
      }
    }
    if (!flow) {
      if (this.count >= this.cfg.maxFlows) this.evictOldest(out);
      flow = {
        sensor,
        vm,
        key,
        initiatorIsA: !swapped,
        vlan: p.vlan,
        proto: p.proto,
        srcIp: formatIp(p.src),
        srcPort: p.sport,
        dstIp: formatIp(p.dst),
        dstPort: p.dport,
        firstUs: ts,
        lastUs: ts,
        pktsToServer: 0,
        pktsToClient: 0,
        bytesToServer: 0,
        bytesToClient: 0,
        flagsToServer: 0,
        flagsToClient: 0,
        fins: 0,
        communityId: null,
      };
      const icmp = p.proto === IPPROTO.ICMP || p.proto === IPPROTO.ICMPV6;
      flow.communityId = communityId({
        proto: p.proto,
        srcIp: flow.srcIp,
        dstIp: flow.dstIp,
        srcPort: icmp ? Math.max(p.icmpType, 0) : p.sport,
        dstPort: icmp ? Math.max(p.icmpCode, 0) : p.dport,
      });
      flows.set(mapKey, flow);
      this.count++;
    }
    if (vm !== null) flow.vm = vm;
    if (ts > flow.lastUs) flow.lastUs = ts;
    const toServer = flow.initiatorIsA === !swapped;
    if (toServer) {
      flow.pktsToServer++;
      flow.bytesToServer += packet.orig_len;
      flow.flagsToServer |= p.tcpFlags;
    } else {
      flow.pktsToClient++;
      flow.bytesToClient += packet.orig_len;
      flow.flagsToClient |= p.tcpFlags;
    }
    if (!isTcp) return;
    if (p.tcpFlags & TCP_FLAGS.RST) {
      this.close(flows, mapKey, flow, 'rst', out);
      return;
    }
    const finsBefore = flow.fins;
    if (p.tcpFlags & TCP_FLAGS.FIN) flow.fins |= toServer ? FIN_TOSERVER : FIN_TOCLIENT;
    // Both sides had already sent FIN and this is the ACK of the second one: the close is complete.
    if (finsBefore === (FIN_TOSERVER | FIN_TOCLIENT) && !(p.tcpFlags & TCP_FLAGS.FIN) && p.tcpFlags & TCP_FLAGS.ACK) {
      this.close(flows, mapKey, flow, 'fin', out);
    }
  }

  /** Advance a sensor's packet clock; sweep its idle flows now and then. */
  private tick(sensor: string, ts: number, out: BatchResult): void {
    let clock = this.clocks.get(sensor);
    if (!clock) {
      clock = { nowUs: ts, nextSweepUs: ts + this.cfg.sweepIntervalS * 1e6 };
      this.clocks.set(sensor, clock);
      return;
    }
    if (ts > clock.nowUs) clock.nowUs = ts;
    if (clock.nowUs < clock.nextSweepUs) return;
    clock.nextSweepUs = clock.nowUs + this.cfg.sweepIntervalS * 1e6;
    const flows = this.sensors.get(sensor);
    if (!flows) return;
    for (const [k, f] of flows) {
      if (clock.nowUs - f.lastUs > this.timeoutUs(f)) this.close(flows, k, f, idleReason(f), out);
    }
  }

  private timeoutUs(f: Flow): number {
    let s: number;
    if (f.proto === IPPROTO.TCP) {
      if (f.fins) s = this.cfg.tcpClosingTimeoutS;
      else if (f.pktsToClient > 0) s = this.cfg.tcpEstablishedTimeoutS;
      else s = this.cfg.tcpNewTimeoutS;
    } else if (f.proto === IPPROTO.UDP) {
      s = this.cfg.udpTimeoutS;
    } else {
      s = this.cfg.otherTimeoutS;
    }
    return s * 1e6;
  }

  private flushSensor(sensor: string, out: BatchResult): void {
    const flows = this.sensors.get(sensor);
    if (flows) {
      for (const [k, f] of flows)
        this.close(flows, k, f, f.fins === (FIN_TOSERVER | FIN_TOCLIENT) ? 'fin' : 'end', out);
      this.sensors.delete(sensor);
    }
    this.clocks.delete(sensor);
  }

  private evictOldest(out: BatchResult): void {
    // Oldest-created flow of the sensor with the most flows: keeps one noisy sensor from
    // evicting everyone else's state.
    let biggest: Map<string, Flow> | undefined;
    for (const m of this.sensors.values()) if (!biggest || m.size > biggest.size) biggest = m;
    const first = biggest?.entries().next();
    if (!biggest || !first || first.done) return;
    const [k, f] = first.value;
    this.close(biggest, k, f, 'timeout', out);
    out.flowsEvicted++;
  }

  private close(flows: Map<string, Flow>, mapKey: string, f: Flow, reason: FlowEndReason, out: BatchResult): void {
    flows.delete(mapKey);
    this.count--;
    out.flows.push({ key: hashFlowKey(f.key), record: toRecord(f, reason) });
  }

  // ---- state --------------------------------------------------------------------------

  /**
   * The whole table as bytes (versioned), for StageState checkpoints. Restoring it and
   * feeding the rest of the input gives exactly the flows an uninterrupted table would.
   * `recovery`: the partition's RecoveryFilter state, kept beside the table (its input's
   * position is the same).
   */
  snapshot(recovery?: RecoveryPartitionState): Buffer {
    const state: SnapshotV2 = {
      v: SNAPSHOT_VERSION,
      ...(recovery?.length ? { recovery } : {}),
      clocks: [...this.clocks].map(([s, c]) => [s, c.nowUs, c.nextSweepUs]),
      flows: [...this.sensors.values()].flatMap((m) =>
        [...m.values()].map((f): SnapshotFlow => [
          f.sensor,
          f.vm,
          f.key.toString('base64'),
          f.initiatorIsA,
          f.vlan,
          f.proto,
          f.srcIp,
          f.srcPort,
          f.dstIp,
          f.dstPort,
          f.firstUs,
          f.lastUs,
          f.pktsToServer,
          f.pktsToClient,
          f.bytesToServer,
          f.bytesToClient,
          f.flagsToServer,
          f.flagsToClient,
          f.fins,
          f.communityId,
        ]),
      ),
    };
    // Compressed: a snapshot travels as one Kafka record, and flow tables are repetitive text.
    return Buffer.concat([SNAPSHOT_MAGIC, deflateRawSync(Buffer.from(JSON.stringify(state)))]);
  }

  /** A table holding a snapshot's state; throws CORDON_ERR_FLOWS_SNAPSHOT for bytes it cannot trust. */
  static restore(buf: Buffer, cfg: FlowTableConfig): FlowTable {
    return FlowTable.restoreState(buf, cfg).table;
  }

  /** The same, with the RecoveryFilter state the snapshot carried (empty: none). */
  static restoreState(buf: Buffer, cfg: FlowTableConfig): { table: FlowTable; recovery: RecoveryPartitionState } {
    if (buf.length < SNAPSHOT_MAGIC.length || !buf.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) {
      throw ERR_FLOWS_SNAPSHOT(`it does not start with the ${SNAPSHOT_MAGIC.toString('latin1').trim()} magic`);
    }
    let json: unknown;
    try {
      json = JSON.parse(inflateRawSync(buf.subarray(SNAPSHOT_MAGIC.length)).toString('utf8'));
    } catch (err) {
      throw ERR_FLOWS_SNAPSHOT.withCause(err, 'its body is not deflated JSON');
    }
    const version = (json as { v?: unknown } | null)?.v;
    // version 1 had no Community ID: it is recomputed from the tuple (ICMP flows in flight then hash with type and code 0)
    if (version !== SNAPSHOT_VERSION && version !== 1)
      throw ERR_FLOWS_SNAPSHOT(`version ${String(version)} is not ${SNAPSHOT_VERSION}`);
    const parsed = snapshotSchema.safeParse(json);
    if (!parsed.success)
      throw ERR_FLOWS_SNAPSHOT.withCause(
        parsed.error,
        `its body does not fit version ${String(version)}: ${parsed.error.issues[0]?.message}`,
      );
    const t = new FlowTable(cfg);
    for (const [s, nowUs, nextSweepUs] of parsed.data.clocks) t.clocks.set(s, { nowUs, nextSweepUs });
    for (const r of parsed.data.flows) {
      const f: Flow = {
        sensor: r[0],
        vm: r[1],
        key: Buffer.from(r[2], 'base64'),
        initiatorIsA: r[3],
        vlan: r[4],
        proto: r[5],
        srcIp: r[6],
        srcPort: r[7],
        dstIp: r[8],
        dstPort: r[9],
        firstUs: r[10],
        lastUs: r[11],
        pktsToServer: r[12],
        pktsToClient: r[13],
        bytesToServer: r[14],
        bytesToClient: r[15],
        flagsToServer: r[16],
        flagsToClient: r[17],
        fins: r[18],
        communityId:
          r[19] !== undefined
            ? r[19]
            : communityId({ proto: r[5], srcIp: r[6], dstIp: r[8], srcPort: r[7], dstPort: r[9] }),
      };
      let m = t.sensors.get(f.sensor);
      if (!m) t.sensors.set(f.sensor, (m = new Map()));
      m.set(f.key.toString('latin1'), f);
      t.count++;
    }
    return { table: t, recovery: parsed.data.recovery ?? [] };
  }
}

/** Magic + format version 2 (version 1 lacked the Community ID): raw-deflated JSON of SnapshotV2. */
const SNAPSHOT_MAGIC = Buffer.from('CFLOWS\n');
const SNAPSHOT_VERSION = 2;
type SnapshotFlow = [
  string,
  string | null,
  string,
  boolean,
  number,
  number,
  string,
  number,
  string,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  string | null,
];
interface SnapshotV2 {
  v: 2;
  clocks: [string, number, number][];
  flows: SnapshotFlow[];
  /** Absent when empty, and in snapshots from before it was kept. */
  recovery?: RecoveryPartitionState;
}
const int = z.number().int();
const usOrNull = z.number().finite().nullable();
const snapshotSchema = z.object({
  v: z.union([z.literal(1), z.literal(2)]),
  recovery: z
    .array(z.tuple([z.string().max(1024), usOrNull, usOrNull, usOrNull]))
    .max(RECOVERY_MAX_KEYS_PER_PARTITION)
    .optional(),
  clocks: z.array(z.tuple([z.string(), int, z.number()])),
  flows: z.array(
    z
      .tuple([
        z.string(),
        z.string().nullable(),
        z.string(),
        z.boolean(),
        int,
        int,
        z.string(),
        int,
        z.string(),
        int,
        int,
        int,
        int,
        int,
        int,
        int,
        int,
        int,
        int,
      ])
      .rest(z.string().nullable()),
  ),
});

/** A flow whose both FINs were seen but whose last ACK never came still ended by FIN. */
function idleReason(f: Flow): FlowEndReason {
  return f.fins === (FIN_TOSERVER | FIN_TOCLIENT) ? 'fin' : 'timeout';
}

function toRecord(f: Flow, reason: FlowEndReason): FlowRecord {
  return {
    flow_id: flowId(f),
    sensor: f.sensor,
    vm: f.vm,
    vlan: f.vlan,
    proto: f.proto,
    src_ip: f.srcIp,
    src_port: f.srcPort,
    dst_ip: f.dstIp,
    dst_port: f.dstPort,
    first_seen_us: f.firstUs,
    last_seen_us: f.lastUs,
    pkts_toserver: f.pktsToServer,
    pkts_toclient: f.pktsToClient,
    bytes_toserver: f.bytesToServer,
    bytes_toclient: f.bytesToClient,
    tcp_flags_toserver: f.flagsToServer,
    tcp_flags_toclient: f.flagsToClient,
    end_reason: reason,
    community_id: f.communityId,
  };
}

/**
 * Deterministic: the same flow re-emitted after a restart gets the same id, which is what
 * the ClickHouse table deduplicates on. Directional fields are in initiator order, so two
 * sensors seeing one connection from different first packets get different ids (they are
 * different observations).
 */
export function flowId(
  f: Pick<Flow, 'sensor' | 'vlan' | 'proto' | 'srcIp' | 'srcPort' | 'dstIp' | 'dstPort' | 'firstUs'>,
): string {
  return createHash('sha256')
    .update(`${f.sensor}|${f.vlan}|${f.proto}|${f.srcIp}|${f.srcPort}|${f.dstIp}|${f.dstPort}|${f.firstUs}`)
    .digest('hex')
    .slice(0, 32);
}
