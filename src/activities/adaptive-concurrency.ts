/**
 * A concurrency limit that adapts to throttling, the way TCP adapts to loss
 * (additive increase, multiplicative decrease): every throttled answer (503
 * SlowDown, or a success the SDK only got after retrying) halves the requests
 * allowed in flight, at most once per round trip; every round of successes
 * at a latency no worse than twice the best recent one adds one, up to the
 * ceiling the operator gave. S3 throttles per prefix and scales up behind the
 * scenes, so a copy that keeps its ceiling through SlowDown storms only
 * multiplies the retries.
 */
import pLimit, { type LimitFunction } from 'p-limit';

export interface AdaptiveConcurrencyStats {
  /** The limit now. */
  current: number;
  /** The lowest the limit went. */
  lowest: number;
  /** Throttled answers seen (each SDK retry counts). */
  throttled: number;
  /** Times the limit was halved. */
  decreases: number;
}

/** How long the latency baseline stands before it is taken afresh (a server's latency drifts with its load). */
const BASELINE_WINDOW_MS = 30_000;
/** Latency may grow to this multiple of the baseline and the limit still grows. */
const LATENCY_TOLERANCE = 2;
/** Weight of the newest latency sample in the moving average. */
const EWMA_WEIGHT = 0.1;

export class AdaptiveConcurrency {
  private readonly limit: LimitFunction;
  private successesSinceChange = 0;
  private lastDecreaseAt = 0;
  private latencyEwma = 0;
  private baseline = Number.POSITIVE_INFINITY;
  private baselineSince = 0;
  private readonly stats: AdaptiveConcurrencyStats;

  constructor(private readonly ceiling: number) {
    this.limit = pLimit(ceiling);
    this.stats = { current: ceiling, lowest: ceiling, throttled: 0, decreases: 0 };
  }

  get current(): number {
    return this.limit.concurrency;
  }

  snapshot(): AdaptiveConcurrencyStats {
    return { ...this.stats, current: this.current };
  }

  /**
   * Runs `request` within the limit. `attempts` reads how many tries the
   * answer took (the SDK's `$metadata.attempts`); `isThrottling` tells a
   * throttled failure from others.
   */
  async run<T>(request: () => Promise<T>, attempts: (result: T) => number, isThrottling: (err: unknown) => boolean): Promise<T> {
    return this.limit(async () => {
      const started = performance.now();
      try {
        const result = await request();
        const tries = attempts(result);
        if (tries > 1) this.throttled(tries - 1);
        else this.succeeded(performance.now() - started);
        return result;
      } catch (err) {
        if (isThrottling(err)) this.throttled(1);
        throw err;
      }
    });
  }

  private throttled(times: number): void {
    this.stats.throttled += times;
    this.successesSinceChange = 0;
    const now = performance.now();
    // One halving per round trip: the answers of requests sent before the first halving say nothing about the new limit.
    if (now - this.lastDecreaseAt < Math.max(this.latencyEwma, 50)) return;
    this.lastDecreaseAt = now;
    this.setLimit(Math.max(1, Math.floor(this.current / 2)));
    this.stats.decreases++;
  }

  private succeeded(latencyMs: number): void {
    const now = performance.now();
    this.latencyEwma = this.latencyEwma === 0 ? latencyMs : this.latencyEwma + EWMA_WEIGHT * (latencyMs - this.latencyEwma);
    if (now - this.baselineSince > BASELINE_WINDOW_MS) {
      this.baseline = this.latencyEwma;
      this.baselineSince = now;
    } else {
      this.baseline = Math.min(this.baseline, this.latencyEwma);
    }
    if (this.current >= this.ceiling) return;
    // A full round of successes (as many as the limit) at a latency that holds earns one more request in flight.
    if (++this.successesSinceChange >= this.current && this.latencyEwma <= LATENCY_TOLERANCE * this.baseline) {
      this.successesSinceChange = 0;
      this.setLimit(this.current + 1);
    }
  }

  private setLimit(n: number): void {
    this.limit.concurrency = n;
    this.stats.lowest = Math.min(this.stats.lowest, n);
  }
}
