// One result line per benchmark, the same for every bench in bench/ (issue 19): a human line
// with the figure, its baseline, the ratio, the target and a PASS/FAIL word, then — as the
// bench's LAST line — JSON that `node bench/history.mjs` appends to bench/RESULTS.md:
//   {"bench":NAME,"metric":…,"value":…,"baseline":…,"ratio":…,"target":…,"pass":true|false}
//
// report({ bench, metric, value, baseline, target, higherIsBetter = true, targetOn = 'ratio', unit, note })
//   bench     the name `npm run bench -- NAME` selects it by (e.g. 'bus-kafka-produce')
//   metric    what value and baseline measure (e.g. 'records/s', 'p99 ms')
//   value     Cordon's figure; baseline: the reference measured in the same run (or null when
//             the target is absolute and there is nothing to compare with)
//   target    the bound from the issue: on the ratio value/baseline (targetOn 'ratio', the
//             default) or on the value itself (targetOn 'value', e.g. p99 < 20 ms)
//   higherIsBetter  true: pass when x >= target; false: pass when x <= target
//   unit, note      optional, only in the human line
// Returns the JSON object. Prints with console.log, so call it last.

const round = (x) => (typeof x === 'number' && Number.isFinite(x) ? Number(x.toPrecision(6)) : x);

export function report({
  bench,
  metric,
  value,
  baseline = null,
  target,
  higherIsBetter = true,
  targetOn = 'ratio',
  unit = '',
  note = '',
}) {
  if (typeof bench !== 'string' || bench === '') throw new Error('report: bench name required');
  if (targetOn !== 'ratio' && targetOn !== 'value') throw new Error(`report: targetOn is 'ratio' or 'value'`);
  const ratio = typeof baseline === 'number' && baseline !== 0 && typeof value === 'number' ? value / baseline : null;
  const judged = targetOn === 'ratio' ? ratio : value;
  const pass =
    typeof judged === 'number' && Number.isFinite(judged) && typeof target === 'number'
      ? higherIsBetter
        ? judged >= target
        : judged <= target
      : false;
  const out = {
    bench,
    metric,
    value: round(value),
    baseline: round(baseline),
    ratio: round(ratio),
    target,
    pass,
  };
  const u = unit ? ` ${unit}` : '';
  const fmt = (x) => (typeof x === 'number' ? x.toLocaleString('en-US', { maximumFractionDigits: 3 }) : String(x));
  const rss = (process.resourceUsage().maxRSS / 1024).toFixed(0);
  console.log(
    `${bench}: ${metric} ${fmt(value)}${u}` +
      (baseline !== null ? `, baseline ${fmt(baseline)}${u}, ratio ${ratio === null ? '-' : ratio.toFixed(3)}` : '') +
      `; target ${targetOn} ${higherIsBetter ? '>=' : '<='} ${target}: ${pass ? 'PASS' : 'FAIL'}` +
      ` (peak RSS ${rss} MiB${note ? `; ${note}` : ''})`,
  );
  console.log(JSON.stringify(out));
  return out;
}
