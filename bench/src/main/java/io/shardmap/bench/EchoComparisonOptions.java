package io.shardmap.bench;

import java.time.Duration;
import picocli.CommandLine.Option;

/**
 * The options of a closed-loop comparison of the directory server with the echo baseline ({@code
 * lookup-load}, {@code batch-load}): the directory under test, the load generator, and the phases. A
 * picocli {@code @Mixin}; each command constructs it with its own defaults (the field values are the
 * defaults {@code --help} shows).
 */
final class EchoComparisonOptions {
  @Option(names = "--store", description = "Store under the server: memory (lookups never touch it) or etcd (a "
      + "real single-member etcd from the local binary) (default: ${DEFAULT-VALUE}).")
  DirectoryUnderTest.StoreKind store = DirectoryUnderTest.StoreKind.memory;

  @Option(names = "--ranges", description = "Ranges of the keyspace, 1-126 (default: ${DEFAULT-VALUE}).")
  int ranges = 64;

  @Option(names = "--shards", description = "Shards owning them, round-robin (default: ${DEFAULT-VALUE}).")
  int shards = 8;

  @Option(names = "--concurrency", description = "Calls in flight (default: ${DEFAULT-VALUE}).")
  int concurrency;

  @Option(names = "--channels", description = "Client connections the calls spread over, 1-64 (default: "
      + "${DEFAULT-VALUE}).")
  int channels;

  @Option(names = "--client-threads",
      description = "Event-loop threads of the load generator's connections, separate from the servers' "
          + "(default: ${DEFAULT-VALUE}).")
  int clientThreads = 2;

  @Option(names = "--initial-warmup-seconds",
      description = "Warm-up of each target once before the first round: JIT of client and transports "
          + "(default: ${DEFAULT-VALUE}).")
  double initialWarmupSeconds;

  @Option(names = "--warmup-seconds", description = "Warm-up before each measured phase (default: ${DEFAULT-VALUE}).")
  double warmupSeconds;

  @Option(names = "--seconds", description = "Time limit of each measured phase (default: ${DEFAULT-VALUE}).")
  double seconds;

  @Option(names = "--max-calls", description = "Call limit of each phase (default: ${DEFAULT-VALUE}).")
  long maxCalls;

  @Option(names = "--rounds",
      description = "Rounds; each runs both targets, the order alternating (default: ${DEFAULT-VALUE}).")
  int rounds;

  @Option(names = "--seed", description = "Seed of the random keys (default: ${DEFAULT-VALUE}).")
  long seed = 1;

  EchoComparisonOptions(int concurrency, int channels, double initialWarmupSeconds, double warmupSeconds,
      double seconds, long maxCalls, int rounds) {
    this.concurrency = concurrency;
    this.channels = channels;
    this.initialWarmupSeconds = initialWarmupSeconds;
    this.warmupSeconds = warmupSeconds;
    this.seconds = seconds;
    this.maxCalls = maxCalls;
    this.rounds = rounds;
  }

  /**
   * The phases, after checking the bounds of these options.
   *
   * @throws IllegalArgumentException naming the bounds, if one is broken
   */
  Comparison.Settings settings() {
    if (ranges < 1 || ranges > 126 || shards < 1 || shards > 1000 || channels < 1 || channels > 64) {
      throw new IllegalArgumentException("ranges 1-126, shards 1-1000, channels 1-64");
    }
    return new Comparison.Settings(concurrency, seconds(initialWarmupSeconds), seconds(warmupSeconds),
        seconds(seconds), maxCalls, rounds);
  }

  /** A time option as a duration: 0 to 600 seconds, fractions allowed. */
  static Duration seconds(double s) {
    if (!(s >= 0) || s > 600) {
      throw new IllegalArgumentException("seconds must be 0-600, got " + s);
    }
    return Duration.ofNanos((long) (s * 1e9));
  }
}
