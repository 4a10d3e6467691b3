/**
 * How a `jitgate bench` run is shown: a plain-text table for the terminal, the same as Markdown for a PR or a
 * README, and a JSON document with everything measured (for tools).
 *
 * @module
 */
import { EXPECTED, KINDS } from './mix.ts';
import type { LoadResult } from './run-load.ts';

export interface RunInfo {
  readonly target: string;
  readonly connections: number;
  readonly durationSec: number;
  readonly rate: number | undefined;
  readonly tokens: number;
  readonly mix: string;
}

const ms = (v: number): string => `${v.toFixed(2)} ms`;
const statusMix = (s: Readonly<Record<string, number>>): string =>
  Object.entries(s)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([k, v]) => `${k}×${v}`)
    .join(' ') || '—';

function rows(info: RunInfo, r: LoadResult): { head: string[][]; kinds: string[][] } {
  const errors = Object.entries(r.errors).map(([k, v]) => `${k}×${v}`).join(' ') || '0';
  const head = [
    ['target', info.target],
    ['connections', String(info.connections)],
    ['offered rate', info.rate === undefined ? 'as fast as answered' : `${info.rate} req/s`],
    ['duration', `${r.seconds.toFixed(1)} s`],
    ['distinct tokens', String(info.tokens)],
    ['requests answered', String(r.completed)],
    ['throughput', `${Math.round(r.rps)} req/s`],
    ['latency p50 / p99 / p99.9', `${ms(r.latency.p50)} / ${ms(r.latency.p99)} / ${ms(r.latency.p999)}`],
    ['latency max', ms(r.latency.max)],
    ['status mix', statusMix(r.statuses)],
    ['unexpected answers', String(r.unexpected)],
    ['no answer (errors)', errors],
  ];
  const kinds = KINDS.filter((k) => r.byKind[k] !== undefined).map((k) => {
    const kr = r.byKind[k]!;
    return [k, String(EXPECTED[k].status), String(kr.sent), statusMix(kr.statuses), String(kr.unexpected)];
  });
  return { head, kinds };
}

const KIND_HEAD = ['kind', 'expect', 'sent', 'answers', 'unexpected'];

function pad(table: string[][]): string {
  const widths = table[0]!.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  return table.map((row) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}

export function textReport(info: RunInfo, r: LoadResult): string {
  const { head, kinds } = rows(info, r);
  return `${pad(head)}\n\n${pad([KIND_HEAD, ...kinds])}\n`;
}

export function markdownReport(info: RunInfo, r: LoadResult): string {
  const { head, kinds } = rows(info, r);
  const md = (t: string[][]): string => t.map((row) => `| ${row.join(' | ')} |`).join('\n');
  return `${md([['measure', 'value'], ['---', '---'], ...head])}\n\n${md([KIND_HEAD, KIND_HEAD.map(() => '---'), ...kinds])}\n`;
}

export function jsonReport(info: RunInfo, r: LoadResult): object {
  return { run: info, result: r, expected: Object.fromEntries(KINDS.map((k) => [k, EXPECTED[k].status])) };
}
