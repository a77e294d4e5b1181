package io.shardmap.cli;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.shardmap.client.ClientOptions;
import io.shardmap.client.CrossShardQuery;
import io.shardmap.client.DataOptions;
import io.shardmap.client.QueryResult;
import io.shardmap.client.ShardInfo;
import io.shardmap.client.ShardKey;
import io.shardmap.client.ShardStatus;
import io.shardmap.client.ShardmapClient;
import io.shardmap.client.ShardmapData;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.support.cli.Durations;
import java.math.BigDecimal;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code query} and {@code count}: cross-shard SELECTs through the client SDK ({@link ShardmapData#query}),
 * so they route with the map and the ownership predicate applications use. Unlike every other command they
 * also connect to the shards' PostgreSQL, with the role {@code --pg-user} and a password from the
 * environment (never a command-line value, which {@code ps} would show).
 */
final class QueryCommands {
  /** Environment variables holding the PostgreSQL password, in the order they are looked at. */
  static final List<String> PASSWORD_ENV = List.of("SHARDMAP_PG_PASSWORD", "PGPASSWORD");

  private QueryCommands() {}

  /** Which shards to ask and how: shared by {@code query} and {@code count}. */
  static final class Target {
    @Option(names = "--range", paramLabel = "LO..HI",
        description = "Only keys in [LO, HI) and the shards owning them (range keyspaces); a side may be empty.")
    String range;

    @Option(names = "--keys", split = ",", paramLabel = "KEY",
        description = "Only these keys and the shards owning them, each shard asked once (any strategy).")
    List<String> keys;

    @Option(names = "--partial",
        description = "Return the healthy shards' rows when some shard fails (reported in the footer and on "
            + "stderr); by default a failed shard fails the command.")
    boolean partial;

    @Option(names = "--replicas",
        description = "Read each shard on one of its replicas (they may lag their primary), else its primary.")
    boolean replicas;

    @Option(names = "--deadline", paramLabel = "DURATION", converter = Durations.Positive.class,
        description = "The longest the query may take, and each shard's statement_timeout (default 30s).")
    Duration deadline;

    @Option(names = "--pg-user", paramLabel = "USER",
        description = "PostgreSQL role for the shards (default $PGUSER, else the OS user). Password: "
            + "$SHARDMAP_PG_PASSWORD, else $PGPASSWORD, else none.")
    String pgUser;
  }

  @Command(name = "query", description = {
    "Run one cross-shard SELECT on a keyspace's sharded table and print its rows, then the map revision "
        + "and what each shard did.",
    "The SELECT is ordinary PostgreSQL with ? placeholders; what cannot be merged into exactly the answer one "
        + "database would give is refused before anything is sent. Each shard is asked only for the rows it "
        + "owns in one map revision, so rows a move has copied are counted once.",
    "--param values: an integer is a bigint, a decimal a numeric, anything else text (cast in SQL, e.g. "
        + "?::text or ?::date, for other types). Keys (--keys, --range) use the keyspace's key type."})
  static final class Query extends Cmd {
    /** The most rows text output holds to align its table. */
    static final int MAX_TEXT_ROWS = 100_000;

    @Parameters(index = "0", paramLabel = "KEYSPACE")
    String keyspace;

    @Parameters(index = "1", paramLabel = "SQL")
    String sql;

    @Option(names = "--param", paramLabel = "VALUE", description = "A value for the next ? (repeatable, in order).")
    List<String> params = new ArrayList<>();

    @Mixin Target target = new Target();

    @Override
    void execute(ShardmapCtl ctl) {
      List<Object> values = new ArrayList<>(params.size());
      for (String p : params) {
        values.add(param(p));
      }
      run(ctl, this, ctl.keyspace(keyspace), sql, values, target, (client, r) -> {
        printRows(ctl, r);
        return null;
      });
    }

    private void printRows(ShardmapCtl ctl, QueryResult r) throws SQLException {
      List<String> labels = r.columnLabels();
      if (ctl.json()) {
        while (r.next()) {
          StringBuilder b = new StringBuilder("{\"row\":{");
          for (int i = 0; i < labels.size(); i++) {
            b.append(i == 0 ? "" : ",").append(Json.string(labels.get(i))).append(':')
                .append(Json.value(r.getObject(i + 1)));
          }
          line(b.append("}}").toString());
        }
        return;
      }
      List<List<String>> rows = new ArrayList<>();
      while (r.next()) {
        if (rows.size() == MAX_TEXT_ROWS) {
          // The table is aligned, so its rows are held until the last one; JSON lines stream instead.
          throw ShardmapException.invalid("output", "the answer has more than " + MAX_TEXT_ROWS + " rows, which "
              + "text output holds in memory to align them: add a LIMIT, or use -o json, which streams");
        }
        List<String> row = new ArrayList<>(labels.size());
        for (int i = 0; i < labels.size(); i++) {
          row.add(cell(r.getObject(i + 1)));
        }
        rows.add(row);
      }
      table(labels, rows);
      line("(" + rows.size() + (rows.size() == 1 ? " row)" : " rows)"));
    }
  }

  @Command(name = "count", description = {
    "Count the rows of a keyspace's sharded table across its shards: SELECT count(*) FROM TABLE, each shard "
        + "counting only the rows it owns in one map revision (a row a move has copied counts once).",
    "Prints the total, each shard's count and the map revision."})
  static final class Count extends Cmd {
    @Parameters(index = "0", paramLabel = "KEYSPACE")
    String keyspace;

    @Parameters(index = "1", paramLabel = "TABLE", description = "One of the keyspace's sharded tables.")
    String table;

    @Mixin Target target = new Target();

    @Override
    void execute(ShardmapCtl ctl) {
      KeyspaceSpec spec = ctl.keyspace(keyspace);
      List<String> tables = spec.getTablesList().stream().map(ShardedTable::getName).toList();
      if (!tables.contains(table)) {
        throw ShardmapException.invalid("table", "'" + table + "' is not a sharded table of keyspace '" + keyspace
            + "' (its tables: " + (tables.isEmpty() ? "none" : String.join(", ", tables)) + ")");
      }
      // One group per shard: the server's own address, port and database are the same for every row a
      // shard counts and differ between shards, so the merged groups are the shards' counts, read in one
      // query at one map revision (the total is their sum). A shard with no row returns no group.
      String sql = "SELECT host(inet_server_addr()) AS addr, inet_server_port() AS port, "
          + "current_database()::text AS db, count(*) AS n FROM " + identifier(table)
          + " GROUP BY host(inet_server_addr()), inet_server_port(), current_database()::text";
      run(ctl, this, spec, sql, List.of(), target, Count::counts);
    }

    private static Counts counts(ShardmapClient client, QueryResult r) throws SQLException {
      Map<String, Long> byEndpoint = new LinkedHashMap<>();
      while (r.next()) {
        byEndpoint.merge(r.getString("addr") + "|" + r.getLong("port") + "|" + r.getString("db"), r.getLong("n"),
            Long::sum);
      }
      Map<String, Long> byShard = new LinkedHashMap<>();
      for (ShardStatus s : r.shards()) {
        byShard.put(s.shard(), 0L);
      }
      long total = 0;
      for (Map.Entry<String, Long> e : byEndpoint.entrySet()) {
        String[] parts = e.getKey().split("\\|", 3);
        String shard = shardOf(client, byShard.keySet(), parts[0], Integer.parseInt(parts[1]), parts[2]);
        byShard.merge(shard, e.getValue(), Long::sum);
        total += e.getValue();
      }
      return new Counts(total, byShard);
    }
  }

  /** {@code count}'s answer: the total and each shard's count (by name; an unmatched endpoint in brackets). */
  record Counts(long total, Map<String, Long> byShard) {}

  /** Reads the result's rows (printing them, or counting them for {@code count}) before the footer. */
  @FunctionalInterface
  interface Rows {
    Counts read(ShardmapClient client, QueryResult r) throws SQLException;
  }

  /**
   * Checks the target against the keyspace, starts a client following only that keyspace on the same
   * directory server, runs the query, prints its rows (through {@code rows}, or {@code count}'s counts) and
   * the footer, and closes everything. The SDK refuses bad SQL, keys and targets before sending anything.
   */
  static void run(ShardmapCtl ctl, Cmd cmd, KeyspaceSpec spec, String sql, List<Object> params, Target t,
      Rows rows) {
    if (t.range != null && t.keys != null) {
      throw cmd.usage("give either --range or --keys, not both");
    }
    String keyspace = spec.getName();
    KeyType type = spec.getKeyType();
    CrossShardQuery.Builder b = CrossShardQuery.builder(keyspace, sql).params(params).partialResults(t.partial)
        .onReplicas(t.replicas);
    if (t.deadline != null) {
      b.deadline(t.deadline);
    }
    if (t.range != null) {
      KeyRange range = KeyRange.parse(type, t.range, "--range");
      b.keyRange(range.unboundedBelow() ? null : key(type, range.start()),
          range.unboundedAbove() ? null : key(type, range.end()));
    } else if (t.keys != null) {
      List<ShardKey> keys = new ArrayList<>(t.keys.size());
      for (int i = 0; i < t.keys.size(); i++) {
        keys.add(key(type, KeyRange.parseKey(type, t.keys.get(i), "--keys[" + i + "]")));
      }
      b.keys(keys);
    }
    CrossShardQuery q = b.build();
    try (ShardmapClient client = startClient(ctl, keyspace);
         ShardmapData data = ShardmapData.open(client, dataOptions(ctl, t));
         QueryResult r = data.query(q)) {
      footer(ctl, t, r, rows.read(client, r));
    } catch (SQLException e) {
      // The SDK reports shard failures as ShardmapException; a bare SQLException is classified as it does.
      throw new ShardmapException(codeOf(e.getSQLState()), "query failed: " + e.getMessage(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ShardmapException(ErrorCode.UNAVAILABLE, "interrupted while starting the client");
    }
  }

  /** The exit class of a PostgreSQL error: its SQLSTATE class, as the SDK classifies a shard's failure. */
  static ErrorCode codeOf(String sqlState) {
    if (sqlState == null || sqlState.length() < 2) {
      return ErrorCode.FAILED_PRECONDITION;
    }
    if (sqlState.equals("57014")) {
      return ErrorCode.DEADLINE_EXCEEDED; // query_canceled: statement_timeout or the deadline's cancel
    }
    return switch (sqlState.substring(0, 2)) {
      case "08", "57" -> ErrorCode.UNAVAILABLE; // connection lost, server shutting down
      case "22", "42" -> ErrorCode.INVALID_ARGUMENT; // data error, syntax or access rule
      default -> ErrorCode.FAILED_PRECONDITION;
    };
  }

  private static ShardmapClient startClient(ShardmapCtl ctl, String keyspace) throws InterruptedException {
    // The same target grammar as shardmapctl's own channel; a CLI run registers as a client of its own id
    // (the directory forgets it one report timeout after it ends).
    return ShardmapClient.start(ClientOptions.builder().targets(ctl.target())
        .channelFactory(target -> Grpc.newChannelBuilder(target, InsecureChannelCredentials.create()))
        .keyspaces(keyspace).rpcTimeout(ctl.rpcTimeout()).startTimeout(ctl.rpcTimeout())
        .clientId("shardmapctl-" + ProcessHandle.current().pid() + "-"
            + Integer.toHexString(ThreadLocalRandom.current().nextInt(1 << 24)))
        .build());
  }

  static DataOptions dataOptions(ShardmapCtl ctl, Target t) {
    // One query connection per shard is all a command needs; single-key pools stay empty (minIdle 0).
    return DataOptions.builder().user(pgUser(ctl, t.pgUser)).password(pgPassword(ctl)).maxPoolSize(1)
        .queryPoolSize(1).property("ApplicationName", "shardmapctl").build();
  }

  /** The PostgreSQL role of the commands that read the shards: {@code --pg-user}, else $PGUSER, else the OS user. */
  static String pgUser(ShardmapCtl ctl, String option) {
    String user = option;
    if (user == null || user.isBlank()) {
      user = ctl.env("PGUSER");
    }
    if (user == null || user.isBlank()) {
      user = System.getProperty("user.name");
    }
    return user;
  }

  /** Its password: the first of {@link #PASSWORD_ENV} that is set, else none (null). */
  static String pgPassword(ShardmapCtl ctl) {
    for (String v : PASSWORD_ENV) {
      String p = ctl.env(v);
      if (p != null && !p.isEmpty()) {
        return p;
      }
    }
    return null;
  }

  private static void footer(ShardmapCtl ctl, Target t, QueryResult r, Counts count) {
    List<ShardStatus> shards = r.shards();
    List<ShardStatus> failed = shards.stream().filter(s -> !s.ok()).toList();
    if (!failed.isEmpty()) {
      ctl.err.println("warning: partial result: the rows of " + failed.stream().map(ShardStatus::shard)
          .collect(Collectors.joining(", ")) + " are missing (" + failed.stream()
          .map(s -> s.shard() + ": " + s.error()).collect(Collectors.joining("; ")) + ")");
    }
    if (ctl.json()) {
      StringBuilder b = new StringBuilder("{\"summary\":{");
      if (count != null) {
        b.append("\"total\":").append(count.total()).append(',');
      }
      b.append("\"revision\":").append(r.revision()).append(",\"partial\":").append(r.partial())
          .append(",\"shards\":[");
      for (int i = 0; i < shards.size(); i++) {
        ShardStatus s = shards.get(i);
        b.append(i == 0 ? "" : ",").append("{\"shard\":").append(Json.string(s.shard()))
            .append(count == null ? "" : ",\"count\":" + (s.ok() ? count.byShard().get(s.shard()) : "null"))
            .append(",\"rows\":").append(s.rows()).append(",\"millis\":").append(s.elapsed().toMillis())
            .append(",\"error\":").append(s.error() == null ? "null" : Json.string(s.error())).append('}');
      }
      b.append(']');
      if (count != null) {
        List<String> other = count.byShard().entrySet().stream()
            .filter(e -> shards.stream().noneMatch(s -> s.shard().equals(e.getKey())))
            .map(e -> "{\"endpoint\":" + Json.string(e.getKey()) + ",\"count\":" + e.getValue() + "}").toList();
        if (!other.isEmpty()) {
          b.append(",\"unmatched\":[").append(String.join(",", other)).append(']');
        }
      }
      ctl.out.println(b.append("}}"));
      return;
    }
    if (count != null) {
      Map<String, String> head = new LinkedHashMap<>();
      head.put("count", Long.toString(count.total()));
      head.put("revision", Long.toString(r.revision()));
      if (r.partial()) {
        head.put("partial", "yes: the failed shards' rows are not counted");
      }
      io.shardmap.support.cli.Table.keyValues(ctl.out, head);
      ctl.out.println();
    } else {
      ctl.out.println();
      ctl.out.println("revision  " + r.revision() + (r.partial() ? "  (partial: the failed shards' rows are missing)"
          : ""));
    }
    List<String> header = new ArrayList<>(List.of("SHARD"));
    if (count != null) {
      header.add("COUNT");
    }
    header.addAll(List.of("ROWS", "TIME"));
    if (t.partial) {
      header.add("ERROR");
    }
    List<List<String>> rows = new ArrayList<>();
    for (ShardStatus s : shards) {
      List<String> row = new ArrayList<>(List.of(s.shard()));
      if (count != null) {
        row.add(s.ok() ? Long.toString(count.byShard().get(s.shard())) : "-");
      }
      row.add(Long.toString(s.rows()));
      row.add(Durations.human(s.elapsed().toMillis()));
      if (t.partial) {
        row.add(s.ok() ? "-" : oneLine(s.error()));
      }
      rows.add(row);
    }
    if (count != null) {
      // Groups no registered endpoint explains (see shardOf): their counts are in the total, so show them.
      for (Map.Entry<String, Long> e : count.byShard().entrySet()) {
        if (shards.stream().noneMatch(s -> s.shard().equals(e.getKey()))) {
          List<String> row = new ArrayList<>(List.of(e.getKey(), Long.toString(e.getValue()), "-", "-"));
          if (t.partial) {
            row.add("-");
          }
          rows.add(row);
        }
      }
    }
    io.shardmap.support.cli.Table.print(ctl.out, header, rows);
  }

  /**
   * The shard (of those asked) whose endpoint answered as {@code addr:port/db}: the one whose primary or a
   * replica has that port and database, and, when several do, whose host is or resolves to {@code addr}.
   * When none or several fit, the endpoint itself in brackets.
   */
  static String shardOf(ShardmapClient client, Iterable<String> asked, String addr, int port, String db) {
    List<String> candidates = new ArrayList<>();
    List<String> byHost = new ArrayList<>();
    for (String name : asked) {
      ShardInfo info = client.shard(name);
      if (info == null) {
        continue;
      }
      List<ShardInfo.Endpoint> endpoints = new ArrayList<>(info.replicas());
      endpoints.add(info.primary());
      boolean fits = false;
      boolean hostFits = false;
      for (ShardInfo.Endpoint e : endpoints) {
        if (e.port() == port && e.database().equals(db)) {
          fits = true;
          hostFits |= sameHost(e.host(), addr);
        }
      }
      if (fits) {
        candidates.add(name);
      }
      if (hostFits) {
        byHost.add(name);
      }
    }
    if (candidates.size() == 1) {
      return candidates.get(0);
    }
    if (byHost.size() == 1) {
      return byHost.get(0);
    }
    return "[" + addr + ":" + port + "/" + db + "]";
  }

  private static boolean sameHost(String host, String addr) {
    if (addr == null) {
      return false;
    }
    String h = host.startsWith("[") && host.endsWith("]") ? host.substring(1, host.length() - 1) : host;
    if (h.equalsIgnoreCase(addr)) {
      return true;
    }
    try {
      InetAddress want = InetAddress.getByName(addr);
      for (InetAddress a : InetAddress.getAllByName(h)) {
        if (a.equals(want)) {
          return true;
        }
      }
    } catch (UnknownHostException e) {
      return false;
    }
    return false;
  }

  private static final Pattern INTEGER = Pattern.compile("[-+]?\\d+");
  private static final Pattern DECIMAL = Pattern.compile("[-+]?(\\d+\\.\\d*|\\.\\d+|\\d+)([eE][-+]?\\d+)?");

  /** A --param value: an integer is a Long (a BigDecimal past 64 bits), a decimal a BigDecimal, else text. */
  static Object param(String v) {
    if (INTEGER.matcher(v).matches()) {
      try {
        return Long.parseLong(v);
      } catch (NumberFormatException e) {
        return new BigDecimal(v);
      }
    }
    if (DECIMAL.matcher(v).matches()) {
      return new BigDecimal(v);
    }
    return v;
  }

  /** A canonical key of the keyspace's type as the SDK's key. */
  static ShardKey key(KeyType type, byte[] canonical) {
    return type == KeyType.KEY_TYPE_INT64 ? ShardKey.of(Keys.decodeInt64(canonical)) : ShardKey.of(canonical);
  }

  /** A table name as a quoted SQL identifier, so it is read exactly as the keyspace spells it. */
  static String identifier(String name) {
    return "\"" + name.replace("\"", "\"\"") + "\"";
  }

  /** A value in a text table: NULL for SQL NULL, bytea as \x-hex (as psql shows it), one line. */
  static String cell(Object v) {
    if (v == null) {
      return "NULL";
    }
    if (v instanceof byte[] bytes) {
      return "\\x" + HexFormat.of().formatHex(bytes);
    }
    if (v instanceof BigDecimal d) {
      return d.toPlainString();
    }
    return oneLine(v.toString());
  }

  private static String oneLine(String s) {
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t");
  }

  /** The little JSON the rows need: strings escaped per RFC 8259, numbers as PostgreSQL wrote them. */
  static final class Json {
    private Json() {}

    static String value(Object v) {
      if (v == null) {
        return "null";
      }
      if (v instanceof Boolean) {
        return v.toString();
      }
      if (v instanceof Long || v instanceof Integer || v instanceof Short || v instanceof Byte) {
        return v.toString();
      }
      if (v instanceof BigDecimal d) {
        return d.toPlainString();
      }
      if (v instanceof Double || v instanceof Float) {
        double d = ((Number) v).doubleValue();
        // NaN and the infinities have no JSON number; PostgreSQL spells them NaN, Infinity, -Infinity.
        return Double.isFinite(d) ? v.toString() : string(v.toString());
      }
      if (v instanceof byte[] bytes) {
        return string("\\x" + HexFormat.of().formatHex(bytes));
      }
      return string(v.toString());
    }

    static String string(String s) {
      StringBuilder b = new StringBuilder(s.length() + 2).append('"');
      for (int i = 0; i < s.length(); i++) {
        char c = s.charAt(i);
        switch (c) {
          case '"' -> b.append("\\\"");
          case '\\' -> b.append("\\\\");
          case '\n' -> b.append("\\n");
          case '\r' -> b.append("\\r");
          case '\t' -> b.append("\\t");
          default -> {
            if (c < 0x20) {
              b.append(String.format("\\u%04x", (int) c));
            } else {
              b.append(c);
            }
          }
        }
      }
      return b.append('"').toString();
    }
  }
}
