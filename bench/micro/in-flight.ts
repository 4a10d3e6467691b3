/**
 * `n` calls of `call`, at most `lanes` in flight at once: a burst as a busy gate sees one (refusals
 * counted at the cluster primary or in Redis, bench/micro/anomaly-*.ts).
 */
export async function inFlight(n: number, lanes: number, call: () => Promise<unknown>): Promise<void> {
  let started = 0;
  const lane = async (): Promise<void> => {
    while (started < n) {
      started++;
      await call();
    }
  };
  await Promise.all(Array.from({ length: lanes }, lane));
}
