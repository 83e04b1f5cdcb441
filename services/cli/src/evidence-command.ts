import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Invocation } from './args.js';
import { configFrom, contextFrom, out } from './cli-context.js';
import { pcapFile } from './demo/frames.js';
import { runOp } from './remote.js';

/** `cordon evidence --alert ID --output FILE`: a pcap of the alerted flow's packets. */
export async function evidenceCommand(inv: Invocation): Promise<number> {
  const frames: Array<[number, Buffer]> = [];
  let linktype = 1;
  const r = (await runOp({
    config: configFrom(inv),
    ctx: contextFrom(inv),
    name: 'evidence',
    input: { alertId: inv.str('alert')!, beforeS: inv.num('before')! / 1000, afterS: inv.num('after')! / 1000 },
    waitMs: inv.num('wait')!,
    onEvent: (ev) => {
      if (!('frame' in ev)) return;
      linktype = ev.frame.linktype;
      frames.push([ev.frame.ts_us, Buffer.from(ev.frame.base64, 'base64')]);
    },
  })) as { packets: number; alert: { alert_id: string; rule_id: string; community_id: string | null } };
  const file = resolve(inv.str('output')!);
  writeFileSync(
    file,
    pcapFile(
      frames.sort((a, b) => a[0] - b[0]),
      linktype,
    ),
    { mode: 0o600 },
  );
  out(JSON.stringify({ file, packets: frames.length, alert: r.alert }));
  if (frames.length === 0)
    process.stderr.write(
      'cordon: no packets of this flow are left on the packets topic (it keeps a day), or the alert has no flow\n',
    );
  return frames.length ? 0 : 1;
}
