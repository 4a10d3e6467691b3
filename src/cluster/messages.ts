/**
 * What the primary and its workers say to each other over IPC (the journal's messages are in
 * journal-follower.ts). Kept apart from both sides so each can import it without the other.
 */
import type { AnomalyCountAnswer, AnomalyCountRequest, AnomalyRearmRequest } from '../anomaly/primary-counter.ts';
import type { AnomalyRevokeAnswer, AnomalyRevokeRequest } from '../anomaly/primary-writer.ts';
import type { ReplayAnswer, ReplayRequest } from '../cache/shared-dpop-replay.ts';
import type { MetricsAnswer, MetricsRequest } from './cluster-metrics.ts';
import type { Readiness } from '../gate.ts';
import type { FollowerRequest, FollowerUpdate } from '../revocation/journal-follower.ts';

export type ToWorker = { type: 'jitgate:drain'; graceMs: number } | { type: 'jitgate:readiness'; id: number } | { type: 'jitgate:reload' } | { type: 'jitgate:reopen-log' } | MetricsRequest | FollowerUpdate | ReplayAnswer | AnomalyRevokeAnswer | AnomalyCountAnswer;
export type FromWorker =
  | { type: 'jitgate:started'; proxy: string; extAuthz: string[] }
  | { type: 'jitgate:failed'; message: string }
  | ({ type: 'jitgate:readiness'; id: number } & Readiness)
  | MetricsAnswer
  | FollowerRequest
  | ReplayRequest
  | AnomalyRevokeRequest
  | AnomalyCountRequest
  | AnomalyRearmRequest;

/** Where a worker finds the DPoP nonce key the primary made (every worker must derive the same nonces). */
export const NONCE_KEY_ENV = 'JITGATE_DPOP_NONCE_KEY';
