package io.shardmap.examples;

import io.shardmap.client.DataOptions;
import io.shardmap.client.MapListener;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardInfo;
import io.shardmap.client.ShardRoute;
import io.shardmap.client.ShardmapData;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.support.cli.Durations;
import java.io.PrintWriter;
import java.sql.Array;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * A small service on the client SDK: starts a {@link ShardmapClient} (which follows the directory's
 * map), opens {@link ShardmapData} (connection pools per shard), upserts users by id through a
 * {@link UserStore}, reads each one back, and reports where the rows went. It routes every call by the
 * client's current map, so it keeps working while an operator splits or reassigns ranges; run it with
 * {@code --duration 60s} and change the map from another terminal to watch it follow.
 *
 * <p>User number {@code n} (1..N) gets the id {@link #userId(long) userId(n)}: ids spread over the whole
 * INT64 key space like random 64-bit ids, but the same on every run, so a rerun updates the same rows.
 */
@Command(name = "shardmap-example", mixinStandardHelpOptions = true, version = "shardmap-example 0.1.0",
    sortOptions = false, subcommands = {AccountCommands.Transfer.class, AccountCommands.Accounts.class,
        SignupCommand.class, CountriesCommand.class},
    description = {"Writes users through the Shardmap client SDK and reads them back: each upsert "
        + "(INSERT ... ON CONFLICT (id) DO UPDATE) runs in a transaction on the shard that owns the user's id, "
        + "each read on that shard too. Prints rows per shard, where some ids went, the map revision and the "
        + "SDK's calls and re-runs.",
        "Exit status: 0 when every user was written, read back as written and (with --verify) found on exactly "
            + "the shard the map names; 1 otherwise, with the reason on stderr; 2 for bad options."})
public final class UsersExample implements Callable<Integer> {
  static final String DEFAULT_DIRECTORY = ConnectionOptions.DEFAULT_DIRECTORY;

  @Mixin
  ConnectionOptions conn;

  @Option(names = "--keyspace", defaultValue = "users", paramLabel = "NAME",
      description = "INT64 keyspace that shards the table (default: ${DEFAULT-VALUE}).")
  String keyspace;

  @Option(names = "--table", defaultValue = "users", paramLabel = "NAME",
      description = "Table (id bigint PRIMARY KEY, name text NOT NULL) on every shard (default: ${DEFAULT-VALUE}).")
  String table;

  @Option(names = "--users", defaultValue = "1000", paramLabel = "N",
      description = "Users to write and read, numbers 1..N (default: ${DEFAULT-VALUE}).")
  int users;

  @Option(names = "--threads", defaultValue = "4", paramLabel = "T",
      description = "Concurrent calls; also the connections per shard pool (default: ${DEFAULT-VALUE}).")
  int threads;

  @Option(names = "--duration", paramLabel = "DURATION", converter = Durations.Positive.class,
      description = "Keep writing and reading all N users in rounds for this long (e.g. 60s, 2m, PT90S); "
          + "default: one round. Change the map meanwhile to see the example follow it.")
  Duration duration;

  @Option(names = "--verify",
      description = "Afterwards, query every shard's primary directly and check that each user is on the "
          + "shard the map names, and on no other.")
  boolean verify;

  @Option(names = "--samples", defaultValue = "5", paramLabel = "K",
      description = "Users whose route the report shows (default: ${DEFAULT-VALUE}).")
  int samples;

  @Spec
  CommandSpec spec;

  public static void main(String[] args) {
    if (System.getProperty("java.util.logging.SimpleFormatter.format") == null) {
      System.setProperty("java.util.logging.SimpleFormatter.format", "%1$tT.%1$tL %4$s %5$s%6$s%n");
    }
    System.exit(commandLine().execute(args));
  }

  static CommandLine commandLine() {
    return new CommandLine(new UsersExample()).setUsageHelpWidth(110)
        .setParameterExceptionHandler((e, args) -> {
          PrintWriter err = e.getCommandLine().getErr();
          err.println("error: " + e.getMessage());
          err.println("Options: " + e.getCommandLine().getCommandSpec().qualifiedName() + " --help");
          err.flush();
          return 2;
        });
  }

  /** The id of user number {@code n}: a fixed bijection of the 64-bit integers (SplitMix64's finalizer). */
  public static long userId(long n) {
    long z = n * 0x9E3779B97F4A7C15L;
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }

  /** A failure the example explains itself; the message is the whole story. */
  static final class Failure extends Exception {
    Failure(String message, Throwable cause) {
      super(message, cause);
    }
  }

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    try {
      checkOptions();
      conn.configureLogging();
      run(out);
      out.flush();
      return 0;
    } catch (CommandLine.ParameterException e) {
      throw e;
    } catch (Failure | InterruptedException | RuntimeException | SQLException e) {
      return failed(e, out, err);
    }
  }

  /** Says why a command failed on stderr (after what it printed) and returns exit status 1. */
  static int failed(Exception e, PrintWriter out, PrintWriter err) {
    out.flush();
    if (e instanceof InterruptedException) {
      Thread.currentThread().interrupt();
      err.println("error: interrupted");
    } else if (e instanceof Failure) {
      err.println("error: " + e.getMessage());
    } else {
      err.println("error: " + describe(e));
    }
    err.flush();
    return 1;
  }

  private void checkOptions() {
    if (users < 1 || users > 10_000_000) {
      throw bad("--users: must be 1..10000000, got " + users);
    }
    if (threads < 1 || threads > 64) {
      throw bad("--threads: must be 1..64, got " + threads);
    }
    if (samples < 0) {
      throw bad("--samples: must be >= 0, got " + samples);
    }
    if (!table.matches("[a-z_][a-z0-9_]{0,62}")) {
      throw bad("--table: '" + table + "' is not a plain lower-case SQL name");
    }
    try {
      conn.check(keyspace);
    } catch (IllegalArgumentException e) {
      throw bad("--directory/--keyspace: " + e.getMessage());
    }
  }

  private CommandLine.ParameterException bad(String message) {
    return new CommandLine.ParameterException(spec.commandLine(), message);
  }

  private void run(PrintWriter out) throws Failure, InterruptedException, SQLException {
    DataOptions dataOptions = conn.dataOptions(threads);
    out.printf("Shardmap users example: %,d users in keyspace '%s' (table %s), %d threads, directory %s%n",
        users, keyspace, table, threads, String.join(",", conn.directory));
    out.flush();

    ShardmapClient client = conn.start(keyspace);
    AtomicLong mapChanges = new AtomicLong();
    MapListener onChange = (before, after, resync) -> {
      mapChanges.incrementAndGet();
      out.printf("  map changed: revision %d -> %d%s%n", before == null ? 0 : before.revision(), after.revision(),
          resync ? " (full re-read)" : "");
      out.flush();
    };
    try (client; ShardmapData data = ShardmapData.open(client, dataOptions)) {
      checkKeyspace(client);
      long startRevision = client.revision();
      client.addListener(onChange);
      UserStore store = new UserStore(data, keyspace, table);

      long deadline = duration == null ? 0 : System.nanoTime() + duration.toNanos();
      List<Round> rounds = new ArrayList<>();
      do {
        Round r = round(store, rounds.size() + 1);
        rounds.add(r);
        if (duration != null) {
          out.printf("  round %d: upserted %,d users in %,d ms (%,d inserted), read them back in %,d ms; map revision %d%n",
              r.number, users, r.writeMillis, r.inserted, r.readMillis, client.revision());
          out.flush();
        }
      } while (duration != null && System.nanoTime() - deadline < 0);
      client.removeListener(onChange);

      report(out, client, data, store, rounds, startRevision, mapChanges.get());
      if (verify) {
        verify(out, client, data);
      }
      out.println("OK");
    }
  }

  private void checkKeyspace(ShardmapClient client) throws Failure {
    var k = client.snapshot().keyspace(keyspace).orElse(null);
    if (k == null) {
      throw new Failure("keyspace '" + keyspace + "' does not exist in the directory (deploy/local/up.sh creates "
          + "'users'; or: shardmapctl keyspace create " + keyspace + " --key-type int64 --strategy range ...)", null);
    }
    if (!k.integerKeys()) {
      throw new Failure("keyspace '" + keyspace + "' has byte-string keys; this example writes "
          + "bigint ids and needs an INT64 keyspace", null);
    }
  }

  /** One round: every user upserted, then every user read back. */
  private record Round(int number, long inserted, long writeMillis, long readMillis, long laggingReads) {}

  private Round round(UserStore store, int number) throws Failure, InterruptedException {
    String stamp = "round " + number + " of " + Instant.now();
    AtomicLong inserted = new AtomicLong();
    long t0 = System.nanoTime();
    forEachUser("upserting", n -> {
      if (store.upsert(userId(n), name(n, stamp))) {
        inserted.incrementAndGet();
      }
    });
    long t1 = System.nanoTime();
    AtomicLong lagging = new AtomicLong();
    forEachUser("reading back", n -> {
      String expected = name(n, stamp);
      String got = store.name(userId(n));
      // A replica may lag its primary for a moment; the local system has none, so this never waits there.
      long until = System.nanoTime() + 2_000_000_000L;
      if (!expected.equals(got)) {
        lagging.incrementAndGet();
        while (!expected.equals(got) && System.nanoTime() - until < 0) {
          Thread.sleep(20);
          got = store.name(userId(n));
        }
      }
      if (!expected.equals(got)) {
        throw new Failure("read back " + (got == null ? "no row" : "'" + got + "'") + ", expected '" + expected
            + "'", null);
      }
    });
    long t2 = System.nanoTime();
    return new Round(number, inserted.get(), (t1 - t0) / 1_000_000, (t2 - t1) / 1_000_000, lagging.get());
  }

  private static String name(long n, String stamp) {
    return "user " + n + " (" + stamp + ")";
  }

  @FunctionalInterface
  private interface UserTask {
    void run(long n) throws Exception;
  }

  /** Runs the task for users 1..N on {@code threads} threads; stops at the first failure and throws it. */
  private void forEachUser(String what, UserTask task) throws Failure, InterruptedException {
    AtomicInteger next = new AtomicInteger(1);
    AtomicReference<Failure> failure = new AtomicReference<>();
    ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
      Thread t = new Thread(r, "example-worker");
      t.setDaemon(true);
      return t;
    });
    try {
      List<Future<?>> workers = new ArrayList<>();
      for (int i = 0; i < threads; i++) {
        workers.add(pool.submit(() -> {
          while (failure.get() == null) {
            int n = next.getAndIncrement();
            if (n > users) {
              return;
            }
            try {
              task.run(n);
            } catch (Exception e) {
              failure.compareAndSet(null, new Failure(what + " user " + n + " (id " + userId(n) + ") failed: "
                  + describe(e), e));
            }
          }
        }));
      }
      for (Future<?> w : workers) {
        try {
          w.get();
        } catch (ExecutionException e) {
          failure.compareAndSet(null, new Failure(what + " failed: " + describe(e.getCause()), e.getCause()));
        }
      }
    } finally {
      pool.shutdownNow();
    }
    if (failure.get() != null) {
      throw failure.get();
    }
  }

  /**
   * Questions over many shards, answered by the SDK's cross-shard queries: each pins one map revision and
   * asks every shard only for the rows it owns in it, so the answers count each user once even while an
   * operator moves ranges.
   */
  private void crossShardReport(PrintWriter out, UserStore store) throws SQLException {
    UserStore.Answer<long[]> totals = store.totals();
    long[] t = totals.rows().get(0);
    out.println();
    out.printf("Cross-shard queries (ShardmapData.query):%n");
    out.printf("  all shards: %,d users in table %s, ids %d .. %d (map revision %d; %s)%n", t[0], table, t[1], t[2],
        totals.revision(), touched(totals.shards()));
    UserStore.Answer<long[]> lengths = store.usersPerNameLength();
    StringBuilder b = new StringBuilder();
    for (long[] row : lengths.rows()) {
      b.append(b.length() == 0 ? "" : ", ").append(row[0]).append(" chars: ").append(String.format("%,d", row[1]));
    }
    out.printf("  users per name length, all shards: %s (%s)%n", b, touched(lengths.shards()));
    long from = 0;
    long to = Long.MAX_VALUE;
    UserStore.Answer<UserStore.User> first = store.firstUsersIn(from, to, 3);
    out.printf("  key range [%d, %d), lowest 3 ids: %s (%s)%n", from, to,
        first.rows().stream().map(u -> Long.toString(u.id())).toList(), touched(first.shards()));
  }

  /** "shards s1 (330 rows), s2 (12 rows)": the shards a query asked and the rows each gave. */
  private static String touched(List<io.shardmap.client.ShardStatus> shards) {
    StringBuilder b = new StringBuilder("shards ");
    for (io.shardmap.client.ShardStatus s : shards) {
      b.append(b.length() == 7 ? "" : ", ").append(s.shard()).append(" (").append(String.format("%,d", s.rows()))
          .append(s.rows() == 1 ? " row" : " rows").append(s.ok() ? "" : ", failed: " + s.error()).append(')');
    }
    return b.toString();
  }

  private void report(PrintWriter out, ShardmapClient client, ShardmapData data, UserStore store, List<Round> rounds,
      long startRevision, long mapChanges) throws Failure, SQLException {
    Round first = rounds.get(0);
    Round last = rounds.get(rounds.size() - 1);
    long writeMillis = rounds.stream().mapToLong(Round::writeMillis).sum();
    long readMillis = rounds.stream().mapToLong(Round::readMillis).sum();
    long written = (long) users * rounds.size();
    out.println();
    if (rounds.size() == 1) {
      out.printf("Upserted %,d users in %,d ms (%,d/s; %,d inserted, %,d updated); read all back as written in %,d ms.%n",
          users, writeMillis, perSecond(written, writeMillis), first.inserted, users - first.inserted, readMillis);
    } else {
      out.printf("%d rounds: upserted %,d users %d times in %,d ms (%,d/s; %,d inserted in round 1, %,d in the last); "
              + "read all back as written each round (%,d ms in all).%n",
          rounds.size(), users, rounds.size(), writeMillis, perSecond(written, writeMillis), first.inserted,
          last.inserted, readMillis);
    }
    long lagging = rounds.stream().mapToLong(Round::laggingReads).sum();
    if (lagging > 0) {
      out.printf("%,d reads first saw an older row (a replica lagging its primary) and were repeated.%n", lagging);
    }

    // Rows per shard: this run's users by the map as it is now, and everything in each shard's table.
    Map<String, Long> mine = new TreeMap<>();
    for (String s : client.snapshot().shards().keySet()) {
      mine.put(s, 0L);
    }
    for (long n = 1; n <= users; n++) {
      mine.merge(client.route(keyspace, userId(n)).shard(), 1L, Long::sum);
    }
    out.println();
    out.println("Rows per shard (this run's users by the current map; all rows of table " + table
        + " on the shard's primary):");
    List<List<String>> rows = new ArrayList<>();
    rows.add(List.of("SHARD", "PRIMARY", "USERS", "TABLE ROWS"));
    for (Map.Entry<String, Long> e : mine.entrySet()) {
      rows.add(List.of(e.getKey(), endpoint(client.shard(e.getKey()).primary()), String.format("%,d", e.getValue()),
          String.format("%,d", countRows(data, e.getKey()))));
    }
    table(out, rows, 2, 3);

    crossShardReport(out, store);

    if (samples > 0) {
      out.println();
      out.println("Where some users went:");
      rows = new ArrayList<>();
      rows.add(List.of("USER", "ID", "SHARD", "EPOCH", "RANGE"));
      for (long n = 1; n <= Math.min(samples, users); n++) {
        ShardRoute r = client.route(keyspace, userId(n));
        rows.add(List.of(Long.toString(n), Long.toString(userId(n)), r.shard(), Long.toString(r.epoch()),
            r.range() == null ? "-" : r.range().toString()));
      }
      table(out, rows, 1);
    }

    out.println();
    long revision = client.revision();
    out.printf("Map: revision %d at the start, %d at the end (%d %s followed while running); "
            + "directory reconnects %d, failovers %d, full re-reads %d.%n",
        startRevision, revision, mapChanges, mapChanges == 1 ? "change" : "changes", client.stats().reconnects(),
        client.stats().failovers(), client.stats().resyncs());
    long calls = store.calls();
    long reruns = store.workRuns() - calls;
    out.printf("SDK calls: %,d (%,d inTransaction, %,d read); %,d re-run by the SDK (a range moved or a "
            + "connection broke before commit).%n",
        calls, written, calls - written, reruns);
  }

  private long countRows(ShardmapData data, String shard) throws Failure {
    try (Connection c = data.primary(shard).getConnection(); Statement s = c.createStatement();
         ResultSet rs = s.executeQuery("SELECT count(*) FROM " + table)) {
      rs.next();
      return rs.getLong(1);
    } catch (SQLException e) {
      throw new Failure("counting the rows of table " + table + " on shard " + shard + " failed: " + describe(e), e);
    }
  }

  /**
   * Queries every shard's primary directly (no routing) for this run's ids and checks that each id is on
   * the shard the client's map names, and on no other. An operator's reassign moves no rows (that is the
   * migrator's job), so after reassigning a range that holds users this reports them as misplaced.
   */
  private void verify(PrintWriter out, ShardmapClient client, ShardmapData data) throws Failure {
    long[] ids = new long[users];
    for (int n = 1; n <= users; n++) {
      ids[n - 1] = userId(n);
    }
    Map<Long, List<String>> foundOn = new HashMap<>();
    Set<String> shards = new TreeMap<>(client.snapshot().shards()).keySet();
    for (String shard : shards) {
      try (Connection c = data.primary(shard).getConnection();
           PreparedStatement ps = c.prepareStatement("SELECT id FROM " + table + " WHERE id = ANY (?)")) {
        for (int from = 0; from < ids.length; from += 10_000) {
          int to = Math.min(ids.length, from + 10_000);
          Long[] chunk = new Long[to - from];
          for (int i = from; i < to; i++) {
            chunk[i - from] = ids[i];
          }
          Array array = c.createArrayOf("bigint", chunk);
          ps.setArray(1, array);
          try (ResultSet rs = ps.executeQuery()) {
            while (rs.next()) {
              foundOn.computeIfAbsent(rs.getLong(1), k -> new ArrayList<>(1)).add(shard);
            }
          }
          array.free();
        }
      } catch (SQLException e) {
        throw new Failure("verify: querying table " + table + " on shard " + shard + " failed: " + describe(e), e);
      }
    }
    List<String> problems = new ArrayList<>();
    int wrong = 0;
    for (int n = 1; n <= users; n++) {
      long id = userId(n);
      String owner = client.route(keyspace, id).shard();
      List<String> on = foundOn.getOrDefault(id, List.of());
      if (on.size() == 1 && on.get(0).equals(owner)) {
        continue;
      }
      wrong++;
      if (problems.size() < 10) {
        problems.add("user " + n + " (id " + id + "): the map names " + owner + ", the row is "
            + (on.isEmpty() ? "on no shard" : "on " + String.join(" and ", on)));
      }
    }
    if (wrong > 0) {
      throw new Failure(String.format("verify: %,d of %,d", wrong, users) + " users are not on exactly the shard the map "
          + "(revision " + client.revision() + ") names:\n  " + String.join("\n  ", problems)
          + (wrong > problems.size() ? "\n  ..." : "")
          + "\n(a reassign moves no rows; rows in a reassigned range stay behind until the migrator moves them)", null);
    }
    out.printf("Verify: queried the primaries of %s directly: each of the %,d users is on the shard the map "
        + "(revision %d) names, and on no other.%n", String.join(", ", shards), users, client.revision());
  }

  private static long perSecond(long n, long millis) {
    return millis == 0 ? n * 1000 : n * 1000 / millis;
  }

  private static String endpoint(ShardInfo.Endpoint e) {
    String host = e.host().contains(":") ? "[" + e.host() + "]" : e.host();
    return host + ":" + e.port() + "/" + e.database();
  }

  /** Prints aligned columns; the given columns are right-aligned (numbers). */
  private static void table(PrintWriter out, List<List<String>> rows, int... rightAligned) {
    int cols = rows.get(0).size();
    int[] width = new int[cols];
    for (List<String> r : rows) {
      for (int i = 0; i < cols; i++) {
        width[i] = Math.max(width[i], r.get(i).length());
      }
    }
    Set<Integer> right = new LinkedHashSet<>();
    for (int c : rightAligned) {
      right.add(c);
    }
    for (List<String> r : rows) {
      StringBuilder line = new StringBuilder("  ");
      for (int i = 0; i < cols; i++) {
        String v = r.get(i);
        String pad = " ".repeat(width[i] - v.length());
        line.append(right.contains(i) ? pad + v : v + (i == cols - 1 ? "" : pad));
        if (i < cols - 1) {
          line.append("  ");
        }
      }
      out.println(line.toString().stripTrailing());
    }
  }

  /** The message of an exception and of its causes, each once, with SQLSTATEs, plus a hint where one helps. */
  static String describe(Throwable e) {
    StringBuilder b = new StringBuilder();
    Set<String> seen = new LinkedHashSet<>();
    String hint = null;
    for (Throwable t = e; t != null && seen.size() < 6; t = t.getCause() == t ? null : t.getCause()) {
      String m = t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage().strip();
      if (t instanceof SQLException s && s.getSQLState() != null && !m.contains(s.getSQLState())) {
        m += " (SQLSTATE " + s.getSQLState() + ")";
      }
      if (t instanceof SQLException s && "42P01".equals(s.getSQLState())) {
        hint = "every shard needs the table: CREATE TABLE <table> (id bigint PRIMARY KEY, name text NOT NULL); "
            + "deploy/local/up.sh creates users";
      }
      if (t instanceof SQLException s && s.getSQLState() != null && s.getSQLState().startsWith("08")) {
        hint = "is the shard's PostgreSQL running? (deploy/local/up.sh starts them)";
      }
      String message = m;
      if (seen.stream().noneMatch(x -> x.contains(message))) {
        seen.add(message);
      }
    }
    b.append(String.join(": ", seen));
    if (hint != null) {
      b.append(" (").append(hint).append(')');
    }
    return b.toString();
  }
}
