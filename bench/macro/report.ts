/**
 * A run's results → the markdown table printed at the end, the raw JSON and an SVG chart (req/s and
 * p50/p99 per scenario) under bench/results/. Rows that errored or answered an unexpected status
 * are listed first and marked, as undici's printResults does, so they cannot pass for speed.
 */
import type { Percentiles } from './histogram.ts';

export interface Row {
  readonly id: string;
  readonly title: string;
  readonly kind: 'http' | 'grpc' | 'crypto' | 'soak';
  readonly rps: { readonly mean: number; readonly stddev: number; readonly samples: readonly number[] };
  readonly latency: Percentiles | null;
  readonly total: number;
  readonly statuses: Readonly<Record<string, number>>;
  readonly unexpected: number;
  readonly errors: number;
  /** Id of the row this one's ratio is taken against, and the ratio. */
  readonly vs?: string;
  ratio?: number;
  /** CPU time per answered request, µs, of the process serving the row (jitgate, the baseline or the upstream; measured run only). */
  readonly serverCpuUsPerReq?: number;
  /** Token cache hits and misses over the measured run (admin /metrics deltas). */
  readonly cache?: { readonly hits: number; readonly misses: number };
  /** jitgate_decisions_total deltas by reason over the measured run. */
  readonly reasons?: Readonly<Record<string, number>>;
  readonly rssStartMB?: number;
  readonly rssEndMB?: number;
  /** Why the row cannot be trusted (pre-flight failed, unexpected answers, cache not as meant). */
  readonly problems: readonly string[];
  readonly extra?: Readonly<Record<string, unknown>>;
}

const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const ms = (n: number | undefined): string => (n === undefined ? '–' : n < 10 ? n.toFixed(3) : n.toFixed(1));

export function markdownTable(rows: readonly Row[]): string {
  const ordered = [...rows.filter((r) => r.problems.length > 0), ...rows.filter((r) => r.problems.length === 0)];
  const lines = [
    '| scenario | req/s (mean ± sd) | × plain proxy | p50 ms | p99 ms | p99.9 ms | errors / unexpected | server CPU µs/req | cache hits |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const r of ordered) {
    const flag = r.problems.length > 0 ? '⚠ ' : '';
    const rate = r.kind === 'crypto' ? `${fmt(r.rps.mean)} verifies/s` : `${fmt(r.rps.mean)} ± ${fmt(r.rps.stddev)}`;
    const cache = r.cache === undefined || r.cache.hits + r.cache.misses === 0 ? '–' : `${((100 * r.cache.hits) / (r.cache.hits + r.cache.misses)).toFixed(1)} %`;
    lines.push(
      `| ${flag}${r.title} \`${r.id}\` | ${rate} | ${r.ratio === undefined ? '–' : r.ratio.toFixed(3)} | ${ms(r.latency?.p50)} | ${ms(r.latency?.p99)} | ${ms(r.latency?.p999)} | ${r.kind === 'crypto' ? '–' : `${r.errors} / ${r.unexpected}`} | ${r.serverCpuUsPerReq === undefined ? '–' : fmt(r.serverCpuUsPerReq, 1)} | ${cache} |`,
    );
  }
  return lines.join('\n');
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Two panels per row: req/s bar (left), p50 and p99 bars (right, p99 clipped at the chart edge). */
export function svgChart(rows: readonly Row[], subtitle: string): string {
  const shown = rows.filter((r) => r.kind !== 'crypto');
  const rowH = 22;
  const labelW = 330;
  const barW = 330;
  const latW = 300;
  const top = 56;
  const barMax = barW - 120; // room for the value label right of the longest bar
  const width = labelW + barW + latW + 150;
  const height = top + shown.length * rowH + 40;
  const maxRps = Math.max(1, ...shown.map((r) => r.rps.mean));
  const p99s = shown.map((r) => r.latency?.p99 ?? 0).sort((a, b) => a - b);
  // Scale latency to the second-largest p99 so one 1 MiB row does not flatten the others.
  const maxLat = Math.max(0.1, p99s[Math.max(0, p99s.length - 2)] ?? 1);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">jitgate macro bench: req/s and latency per scenario</text>`,
    `<text x="10" y="38" fill="#555">${esc(subtitle)}</text>`,
    `<text x="${labelW}" y="${top - 4}" fill="#333">req/s (mean; whisker ± sd)</text>`,
    `<text x="${labelW + barW + 30}" y="${top - 4}" fill="#333">latency ms: p50 (dark), p99 (light); scale 0–${maxLat.toFixed(2)} ms</text>`,
  ];
  shown.forEach((r, i) => {
    const y = top + i * rowH;
    const bad = r.problems.length > 0;
    out.push(`<text x="${labelW - 6}" y="${y + 15}" text-anchor="end"${bad ? ' fill="#b00"' : ''}>${esc((bad ? '⚠ ' : '') + r.id)}</text>`);
    const w = (r.rps.mean / maxRps) * barMax;
    const color = r.id.startsWith('plain-proxy') || r.id === 'direct' ? '#888' : r.kind === 'grpc' || r.id.startsWith('ext-authz') ? '#6a9' : r.id.startsWith('deny') ? '#c96' : '#47a';
    out.push(`<rect x="${labelW}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${color}"/>`);
    const sd = Math.min(r.rps.stddev, r.rps.mean) / maxRps * barMax;
    out.push(`<line x1="${(labelW + w - sd).toFixed(1)}" x2="${(labelW + w + sd).toFixed(1)}" y1="${y + rowH / 2}" y2="${y + rowH / 2}" stroke="black"/>`);
    out.push(`<text x="${(labelW + w + sd + 4).toFixed(1)}" y="${y + 15}" fill="#333">${fmt(r.rps.mean)}${r.ratio === undefined ? '' : ` (×${r.ratio.toFixed(2)})`}</text>`);
    if (r.latency !== null) {
      const x0 = labelW + barW + 30;
      const p99 = Math.min(r.latency.p99 / maxLat, 1) * latW;
      const p50 = Math.min(r.latency.p50 / maxLat, 1) * latW;
      out.push(`<rect x="${x0}" y="${y + 4}" width="${p99.toFixed(1)}" height="${rowH - 8}" fill="#cde"/>`);
      out.push(`<rect x="${x0}" y="${y + 7}" width="${p50.toFixed(1)}" height="${rowH - 14}" fill="#357"/>`);
      out.push(`<text x="${(x0 + p99 + 4).toFixed(1)}" y="${y + 15}" fill="#333">${ms(r.latency.p50)} / ${ms(r.latency.p99)}${r.latency.p99 > maxLat ? ' ▸' : ''}</text>`);
    }
  });
  out.push('</svg>');
  return out.join('\n');
}
