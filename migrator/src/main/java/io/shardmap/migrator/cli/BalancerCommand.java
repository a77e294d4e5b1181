package io.shardmap.migrator.cli;

import io.shardmap.core.balance.BalancerPolicies;
import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.migrator.MigratorOptions;
import io.shardmap.migrator.MoveSpec;
import io.shardmap.migrator.internal.balance.Balancer;

import io.shardmap.migrator.internal.balance.BalancerRound;
import io.shardmap.proto.v1.BalancerMove;
import io.shardmap.proto.v1.BalancerPolicy;
import io.shardmap.proto.v1.BalancerState;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.Suggestion;
import io.shardmap.store.EtcdMetaStore;
import io.shardmap.store.MetaStore;
import io.shardmap.support.cli.Durations;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import java.util.logging.Level;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code migrator balancer}: the balancer's policy, its dry run, its state, and the balancer itself
 * (docs/balancing.md). Each subcommand is a class nested here.
 */
@Command(
    name = "balancer",
    description = {
      "The balancer: one process per deployment that evens out load and size across shards by splitting hot",
      "ranges where their load halves and moving units through the migrator, within a policy stored in etcd",
      "(off until enabled). 'plan' prints exactly what it would do now. See docs/balancing.md."
    },
    synopsisSubcommandLabel = "COMMAND",
    subcommands = {
      BalancerCommand.Policy.class,
      BalancerCommand.Plan.class,
      BalancerCommand.Status.class,
      BalancerCommand.Run.class
    },
    footer = {"", "Exit codes: 0 ok; 2 usage or INVALID_ARGUMENT; 5 UNAVAILABLE (etcd or the directory); "
        + "1 anything else."})
final class BalancerCommand extends Cmd {
  static final String DEFAULT_DIRECTORY = "127.0.0.1:7700";
  static final String DIRECTORY_ENV = "SHARDMAP_DIRECTORY";

  @Override
  int execute(MigratorCli cli) {
    throw usage("give a subcommand: policy, plan, status or run (migrator balancer --help)");
  }

  /** The balancer's etcd client, directory channel and drivers, closed together. */
  abstract static class BalancerCmd extends Cmd {
    @Option(names = "--directory", paramLabel = "HOST:PORT", description = "A directory server to ask for the plan "
        + "(default: $" + DIRECTORY_ENV + ", else " + DEFAULT_DIRECTORY + ").")
    String directory;

    MetaStore store;
    ManagedChannel channel;
    ExecutorService drivers;

    Balancer open(MigratorCli cli, int parallel) {
      MigratorOptions o = options();
      store = EtcdMetaStore.builder().endpoints(o.etcdEndpoints()).requestTimeout(o.etcdTimeout()).build();
      String target = directory != null ? directory : cli.env.getOrDefault(DIRECTORY_ENV, DEFAULT_DIRECTORY);
      set("--directory", () -> channel = NettyChannelBuilder.forTarget(target).usePlaintext().build());
      drivers = Executors.newFixedThreadPool(Math.max(1, parallel), r -> {
        Thread t = new Thread(r, "balancer-move");
        t.setDaemon(true);
        return t;
      });
      return new Balancer(store, new CatalogPaths(o.etcdPrefix()), moves(), channel, o.workerName(),
          Clock.systemUTC(), System::nanoTime, o.etcdTimeout(), o.leaseTtl(), drivers);
    }

    /** The balancer's moves go through this process's Migrator, as `migrator move` would. */
    Balancer.Moves moves() {
      return new Balancer.Moves() {
        @Override
        public String start(String keyspace, String range, Integer bucket, boolean split, String target,
                            long pauseBudgetMs) {
          MoveSpec.Builder b = MoveSpec.builder().keyspace(keyspace).target(target)
              .pauseBudget(Duration.ofMillis(pauseBudgetMs));
          if (bucket != null) {
            b.bucket(bucket);
          } else {
            b.range(range).split(split);
          }
          return migrator().plan(b.build()).getId();
        }

        @Override
        public Migration drive(String id, BooleanSupplier stop) {
          return migrator().drive(id, m -> { }, Duration.ofSeconds(30), stop);
        }

        @Override
        public List<Migration> list() {
          return migrator().list();
        }
      };
    }

    void closeAll() {
      if (drivers != null) {
        drivers.shutdown();
        try {
          drivers.awaitTermination(15, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
      if (channel != null) {
        channel.shutdownNow();
      }
      if (store != null) {
        store.close();
      }
    }
  }

  @Command(
      name = "policy",
      description = {
        "Show the policy, or change the fields given (the others stay as they are). A value out of bounds is",
        "refused naming the field, and nothing is written. 0 means a field's default."
      })
  static final class Policy extends BalancerCmd {
    @Option(names = "--enable", description = "Let the running balancer act.") boolean enable;
    @Option(names = "--disable", description = "Stop it starting moves (running ones finish).") boolean disable;
    @Option(names = "--keyspaces", split = ",", paramLabel = "KS[,KS...]",
        description = "Balance only these keyspaces ('' for all).") List<String> keyspaces;
    @Option(names = "--target-skew", paramLabel = "X", description = "Done at or below this skew (default 0.25).")
    Double targetSkew;
    @Option(names = "--load-weight", paramLabel = "W", description = "Weight of load, 0 to 1 (default 1).")
    Double loadWeight;
    @Option(names = "--size-weight", paramLabel = "W", description = "Weight of size, 0 to 1 (default 1).")
    Double sizeWeight;
    @Option(names = "--hysteresis", paramLabel = "X", description = "Least skew gain of a step (default 0.05).")
    Double hysteresis;
    @Option(names = "--max-concurrent-moves", paramLabel = "N", description = "Moves at once (default 1).")
    Integer maxConcurrent;
    @Option(names = "--max-moves", paramLabel = "N", description = "Steps in one plan (default 5).")
    Integer maxMoves;
    @Option(names = "--pause-budget", paramLabel = "DURATION", converter = Durations.Positive.class,
        description = "Write pause allowed at each cutover (default 100ms).") Duration pauseBudget;
    @Option(names = "--quiet-hours", split = ",", paramLabel = "HH:MM-HH:MM[,...]",
        description = "UTC windows in which no move starts ('' for none).") List<String> quietHours;
    @Option(names = "--cooldown", paramLabel = "DURATION", converter = Durations.ZeroAllowed.class,
        description = "A moved unit is not moved again for this long (default 1h).") Duration cooldown;
    @Option(names = "--window", paramLabel = "DURATION", converter = Durations.Positive.class,
        description = "Load window the plan uses (default 10m).") Duration window;
    @Option(names = "--interval", paramLabel = "DURATION", converter = Durations.Positive.class,
        description = "Time between rounds (default 1m).") Duration interval;

    @Override
    int execute(MigratorCli cli) {
      if (enable && disable) {
        throw usage("give --enable or --disable, not both");
      }
      try {
        Balancer b = open(cli, 1);
        BalancerPolicy p = b.updatePolicy(old -> {
          BalancerPolicy.Builder n = old.toBuilder();
          if (enable || disable) {
            n.setEnabled(enable);
          }
          if (keyspaces != null) {
            n.clearKeyspaces().addAllKeyspaces(keyspaces.stream().filter(k -> !k.isBlank()).toList());
          }
          if (targetSkew != null) {
            n.setTargetSkew(targetSkew);
          }
          if (loadWeight != null) {
            n.setLoadWeight(loadWeight);
          }
          if (sizeWeight != null) {
            n.setSizeWeight(sizeWeight);
          }
          if (hysteresis != null) {
            n.setHysteresis(hysteresis);
          }
          if (maxConcurrent != null) {
            n.setMaxConcurrentMoves(maxConcurrent);
          }
          if (maxMoves != null) {
            n.setMaxMoves(maxMoves);
          }
          if (pauseBudget != null) {
            n.setPauseBudgetMs(pauseBudget.toMillis());
          }
          if (quietHours != null) {
            n.clearQuietHours().addAllQuietHours(quietHours.stream().filter(q -> !q.isBlank()).toList());
          }
          if (cooldown != null) {
            n.setCooldownSeconds(cooldown.toSeconds());
          }
          if (window != null) {
            n.setWindowSeconds(window.toSeconds());
          }
          if (interval != null) {
            n.setIntervalSeconds(interval.toSeconds());
          }
          return n.build();
        });
        print(cli, BalancerPolicies.effective(p));
        return 0;
      } finally {
        closeAll();
      }
    }

    static void print(MigratorCli cli, BalancerPolicy p) {
      if (cli.json()) {
        cli.out.println(json(p, false));
        return;
      }
      cli.out.println("balancer " + (p.getEnabled() ? "ENABLED" : "disabled") + "; keyspaces "
          + (p.getKeyspacesCount() == 0 ? "(all range and hash keyspaces)" : String.join(",", p.getKeyspacesList())));
      cli.out.printf(Locale.ROOT, "target skew %.2f, weights load %.2f size %.2f, hysteresis %.3f%n",
          p.getTargetSkew(), p.getLoadWeight(), p.getSizeWeight(), p.getHysteresis());
      cli.out.printf(Locale.ROOT, "moves: %d at once, %d per plan, pause budget %d ms, cooldown %s%n",
          p.getMaxConcurrentMoves(), p.getMaxMoves(), p.getPauseBudgetMs(),
          Durations.format(Duration.ofSeconds(p.getCooldownSeconds())));
      cli.out.println("load window " + Durations.format(Duration.ofSeconds(p.getWindowSeconds())) + ", a round every "
          + Durations.format(Duration.ofSeconds(p.getIntervalSeconds())) + "; quiet hours (UTC) "
          + (p.getQuietHoursCount() == 0 ? "none" : String.join(", ", p.getQuietHoursList())));
    }
  }

  @Command(
      name = "plan",
      description = {
        "Dry run: the splits and moves the balancer would do now under the stored policy (enabled or not), in",
        "order, each with the skew expected after it. Nothing is written."
      })
  static final class Plan extends BalancerCmd {
    @Override
    int execute(MigratorCli cli) {
      try {
        Balancer b = open(cli, 1);
        BalancerPolicy p = BalancerPolicies.effective(b.policy());
        List<BalancerRound.Step> steps = b.plan(p);
        if (cli.json()) {
          StringBuilder out = new StringBuilder("[");
          for (int i = 0; i < steps.size(); i++) {
            out.append(i == 0 ? "\n" : ",\n").append(json(steps.get(i).suggestion(), false));
          }
          cli.out.println(out.append(steps.isEmpty() ? "]" : "\n]"));
          return 0;
        }
        if (steps.isEmpty()) {
          cli.out.println("nothing to do: every balanced keyspace is within target skew "
              + String.format(Locale.ROOT, "%.2f", p.getTargetSkew()) + " (+ hysteresis "
              + String.format(Locale.ROOT, "%.3f", p.getHysteresis()) + ")");
        }
        int n = 0;
        for (BalancerRound.Step s : steps) {
          Suggestion g = s.suggestion();
          cli.out.printf(Locale.ROOT, "%d. %s: %s%n   expected skew after: load %.2f, size %.2f%n", ++n, s.keyspace(),
              g.getText(), g.getLoadSkewAfter(), g.getSizeSkewAfter());
        }
        if (!p.getEnabled()) {
          cli.out.println("(the balancer is disabled: 'migrator balancer policy --enable' lets it act)");
        }
        return 0;
      } finally {
        closeAll();
      }
    }
  }

  @Command(name = "status", description = "What the acting balancer did last: its round, plan and moves.")
  static final class Status extends BalancerCmd {
    @Override
    int execute(MigratorCli cli) {
      try {
        Balancer b = open(cli, 1);
        BalancerState st = b.state();
        if (cli.json()) {
          cli.out.println(json(st, false));
          return 0;
        }
        Policy.print(cli, BalancerPolicies.effective(b.policy()));
        if (st.getRoundUnixMs() == 0) {
          cli.out.println("no round yet (is 'migrator balancer run' running?)");
          return 0;
        }
        cli.out.println("last round " + Instant.ofEpochMilli(st.getRoundUnixMs()) + " by " + st.getHolder() + ": "
            + (st.getIdleReason().isEmpty() ? "started moves" : st.getIdleReason()));
        for (BalancerMove m : st.getMovesList()) {
          cli.out.println("  " + Instant.ofEpochMilli(m.getStartedUnixMs()) + "  " + m.getMigrationId() + "  "
              + m.getKeyspace() + " " + m.getLabel() + "  " + m.getSource() + " -> " + m.getTarget());
        }
        return 0;
      } finally {
        closeAll();
      }
    }
  }

  @Command(
      name = "run",
      description = {
        "Run as the balancer until SIGTERM or SIGINT: one process per deployment acts (it holds an etcd lease;",
        "others wait to take over). Every interval, if the policy is enabled and outside quiet hours, it starts",
        "the planned moves its limits allow and drives them. Logs go to stderr."
      })
  static final class Run extends BalancerCmd {
    @Override
    int execute(MigratorCli cli) throws InterruptedException {
      if (MigratorCli.SHARDMAP_LOGGER.getLevel() == Level.WARNING) {
        MigratorCli.SHARDMAP_LOGGER.setLevel(null);
      }
      try {
        Balancer b = open(cli, BalancerPolicies.effective(BalancerPolicy.newBuilder().setMaxConcurrentMoves(16)
            .build()).getMaxConcurrentMoves());
        BalancerPolicy p = BalancerPolicies.effective(b.policy());
        cli.err.println("balancer " + options().workerName() + ": " + (p.getEnabled() ? "enabled" : "disabled")
            + "; SIGTERM or Ctrl-C stops it");
        cli.err.flush();
        AtomicInteger signal = new AtomicInteger();
        Signals.Handle handle = cli.signals.onStop(signal::set);
        try {
          b.run(() -> signal.get() != 0);
        } finally {
          handle.close();
        }
        cli.err.println("balancer " + options().workerName() + ": stopped");
        return 0;
      } finally {
        closeAll();
      }
    }
  }
}
