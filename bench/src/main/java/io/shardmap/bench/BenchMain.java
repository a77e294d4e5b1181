package io.shardmap.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.logging.Level;
import java.util.logging.Logger;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Unmatched;

/** The entry point of shardmap-bench.jar: one subcommand per benchmark. */
@Command(name = "shardmap-bench", mixinStandardHelpOptions = true,
    description = "Shardmap benchmarks. See docs/benchmarks.md for what each measures and the recorded numbers.",
    subcommands = {BenchMain.Jmh.class, LookupLoadCommand.class, BatchLoadCommand.class, HeapCommand.class,
        PropagationCommand.class, ClientHeapCommand.class, WatchRecoveryCommand.class, DataLoadCommand.class,
        MigrateCopyCommand.class, MigrateLoadCommand.class, FencePassCommand.class, SqlRoutingCommand.class,
        FenceGuardCommand.class, CrossShardCommand.class, TwoPhaseCommand.class,
        TxnCommand.class, IdsCommand.class, ReferenceCommand.class,
        ReferenceVerifyBench.class, FailoverCommand.class, BreakerCommand.class, LoadHistoryCommand.class,
        SizesCommand.class})
public final class BenchMain implements Callable<Integer> {
  /**
   * Kept strongly reachable: java.util.logging holds loggers weakly, and a collected logger would lose
   * the level set here. The servers' INFO lines (started, loaded) would interleave with the results.
   */
  private static final Logger SHARDMAP_LOG = Logger.getLogger("io.shardmap");

  public static void main(String[] args) {
    SHARDMAP_LOG.setLevel(Level.WARNING);
    // HikariCP logs pool start and shutdown at INFO through slf4j-simple; keep the results readable.
    if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) {
      System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
    }
    System.exit(new CommandLine(new BenchMain()).execute(args));
  }

  @Override
  public Integer call() {
    new CommandLine(this).usage(System.out);
    return 2;
  }

  /** The JMH runner over this jar's benchmarks; every argument goes to JMH unchanged. */
  @Command(name = "jmh", description = {
      "Runs the JMH benchmarks of io.shardmap.bench.jmh; all arguments go to JMH "
          + "(e.g. jmh -prof gc RouteLookup, jmh -h for JMH's own options)."})
  static final class Jmh implements Callable<Integer> {
    @Unmatched
    List<String> args = new ArrayList<>();

    @Override
    public Integer call() throws Exception {
      org.openjdk.jmh.Main.main(args.toArray(new String[0]));
      return 0;
    }
  }
}
