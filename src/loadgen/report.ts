/**
 * How a `jitgate bench` run is shown: a plain-text table for the terminal, the same as Markdown for a PR or a
 * README, and a JSON document with everything measured (for tools); each ends with the verdict, in words.
 *
 * @module
 */
import { EXPECTED, KINDS, type Kind } from './mix.ts';
import type { LoadResult } from './run-load.ts';

export interface RunInfo {
  /** The target's origin. */
  readonly target: string;
  readonly connections: number;
  readonly durationSec: number;
  readonly rate: number | undefined;
  readonly tokens: number;
  readonly mix: string;
  /** The kinds the mix sends (weight above 0). */
  readonly kinds: readonly Kind[];
}

/** Whether the run showed a working gate, and if not, why, one reason per entry; an interrupted run is neither. */
export interface Verdict {
  readonly ok: boolean;
  readonly interrupted: boolean;
  readonly problems: readonly string[];
}

const count = (s: Readonly<Record<string, number>>): number => Object.values(s).reduce((a, b) => a + b, 0);
const tally = (s: Readonly<Record<string, number>>): string =>
  Object.entries(s)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}×${v}`)
    .join(' ');

/** Connection errors that mean the target is not there at all, for a hint in the verdict. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

export function verdict(info: RunInfo, r: LoadResult): Verdict {
  const problems: string[] = [];
  if (r.unexpected > 0) problems.push(`${r.unexpected} answer${r.unexpected === 1 ? ' was' : 's were'} not what the kind expects (see the kinds below)`);
  const errors = count(r.errors);
  if (errors > 0) {
    const unreachable = Object.keys(r.errors).some((code) => UNREACHABLE.has(code));
    problems.push(`${errors} request${errors === 1 ? '' : 's'} got no answer (${tally(r.errors)})${unreachable ? `: is ${info.target} up and reachable?` : ''}`);
  }
  if (r.completed === 0 && errors === 0 && !r.interrupted) problems.push('no request was answered');
  const unsent = info.kinds.filter((k) => (r.byKind[k]?.sent ?? 0) === 0);
  if (unsent.length > 0 && !r.interrupted) problems.push(`never sent, so not checked: ${unsent.join(', ')} (a longer --duration, or more weight in --mix)`);
  if (info.rate !== undefined && r.notSent > 0) {
    problems.push(`${r.notSent} of the offered requests found every connection busy and were not sent: the target answered slower than offered (more --connections, or a lower --rate)`);
  }
  return { ok: problems.length === 0 && !r.interrupted, interrupted: r.interrupted, problems };
}

const ms = (v: number): string => `${v.toFixed(2)} ms`;
const statusMix = (s: Readonly<Record<string, number>>): string =>
  Object.entries(s)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([k, v]) => `${k}×${v}`)
    .join(' ') || '—';

function rows(info: RunInfo, r: LoadResult): { head: string[][]; kinds: string[][] } {
  const errors = tally(r.errors) || '0';
  const offered =
    info.rate === undefined ? 'as fast as answered (closed loop)' : `${info.rate} req/s, open loop (sent ${Math.round(r.sent / r.seconds)} req/s${r.notSent > 0 ? `, ${r.notSent} not sent` : ''})`;
  const head = [
    ['target', info.target],
    ['connections', r.opened === info.connections ? String(info.connections) : `${info.connections} (${r.opened} opened)`],
    ['offered rate', offered],
    ['duration', `${r.seconds.toFixed(1)} s${r.interrupted ? ' (interrupted)' : ''}`],
    ['distinct tokens', `${info.tokens} per kind`],
    ['requests sent', String(r.sent)],
    ['requests answered', String(r.completed)],
    ['throughput', `${Math.round(r.rps)} req/s`],
    ['latency p50 / p99 / p99.9', `${ms(r.latency.p50)} / ${ms(r.latency.p99)} / ${ms(r.latency.p999)}`],
    ['latency max', ms(r.latency.max)],
    ['status mix', statusMix(r.statuses)],
    ['unexpected answers', String(r.unexpected)],
    ['no answer (errors)', errors],
  ];
  const kinds = KINDS.filter((k) => info.kinds.includes(k) || r.byKind[k] !== undefined).map((k) => {
    const kr = r.byKind[k] ?? { sent: 0, unexpected: 0, failed: 0, statuses: {} };
    return [k, String(EXPECTED[k].status), String(kr.sent), statusMix(kr.statuses), String(kr.unexpected), String(kr.failed)];
  });
  return { head, kinds };
}

const KIND_HEAD = ['kind', 'expect', 'sent', 'answers', 'unexpected', 'no answer'];

function pad(table: string[][]): string {
  const widths = table[0]!.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  return table.map((row) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}

function verdictLines(v: Verdict): string[] {
  if (v.ok) return ['verdict: every answer was the one its kind expects'];
  // Interrupted, the run says what it saw until then; requests cut by the interrupt are not counted against the target.
  const head = v.interrupted ? 'verdict: INTERRUPTED (SIGINT) before the duration ended; the figures above are until then' : 'verdict: FAILED';
  return [head, ...v.problems.map((p) => `- ${p}`)];
}

export function textReport(info: RunInfo, r: LoadResult, v: Verdict): string {
  const { head, kinds } = rows(info, r);
  return `${pad(head)}\n\n${pad([KIND_HEAD, ...kinds])}\n\n${verdictLines(v).join('\n')}\n`;
}

export function markdownReport(info: RunInfo, r: LoadResult, v: Verdict): string {
  const { head, kinds } = rows(info, r);
  const md = (t: string[][]): string => t.map((row) => `| ${row.join(' | ')} |`).join('\n');
  return `${md([['measure', 'value'], ['---', '---'], ...head])}\n\n${md([KIND_HEAD, KIND_HEAD.map(() => '---'), ...kinds])}\n\n${verdictLines(v).join('\n')}\n`;
}

export function jsonReport(info: RunInfo, r: LoadResult, v: Verdict): object {
  return { run: info, result: r, verdict: v, expected: Object.fromEntries(KINDS.map((k) => [k, EXPECTED[k].status])) };
}
