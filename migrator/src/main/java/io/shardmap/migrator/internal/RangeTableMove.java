package io.shardmap.migrator.internal;

import io.shardmap.core.Backoff;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.sql.KeyKind;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;
import org.postgresql.copy.PGCopyOutputStream;

/**
 * The PostgreSQL side of moving one unit (a {@link MoveUnit}: a key range, a hash bucket, a ring arc or
 * directory entries) of one sharded table from a source shard to a target shard
 * (docs/migrator-design.md): change capture on the source, snapshot copy, replay by key, and the fence.
 * Every row is selected by the unit's SQL condition; chunks follow the key column's order (its index),
 * narrowed by the unit's index bound where it has one. Every operation is idempotent, so a migrator
 * restarted at any step can run it again. (Named after the first kind of unit it moved.)
 *
 * <p>Keys cross the migrator as canonical bytes ({@link io.shardmap.core.Keys}) and go back into SQL as
 * literals of the column's type ({@link KeyKind#literal}).
 *
 * <p>Objects it creates on the source live in schema {@code shardmap} and carry the migration id in their
 * names, so moves of different units or tables never share them.
 */
public final class RangeTableMove {
  /** The setting with which the migrator's own writes pass a fence (see {@link Fences#passFence}). */
  public static final String BYPASS_SETTING = "shardmap.bypass_fence";

  private final String id;
  private final String keyspace;
  private final String table;
  private final String keyColumn;
  private final KeyKind kind;
  private final MoveUnit unit;
  private final String wording;
  private volatile String copyColumns;

  /**
   * Moves the INT64 range [lo, hi) of an integer key column.
   *
   * @param id the migration id: lower-case letters, digits and underscores (it becomes part of SQL names)
   * @param lo the first key of the range, or null for unbounded below
   * @param hi the first key after the range, or null for unbounded above
   */
  public RangeTableMove(String id, String keyspace, String table, String keyColumn, Long lo, Long hi) {
    this(id, keyspace, table, keyColumn, KeyKind.INT64, int64Range(lo, hi));
  }

  /**
   * @param id the migration id: lower-case letters, digits and underscores (it becomes part of SQL names)
   * @param kind how the key column's values map to canonical keys
   */
  public RangeTableMove(String id, String keyspace, String table, String keyColumn, KeyKind kind, MoveUnit unit) {
    this(id, keyspace, table, keyColumn, kind, unit, null);
  }

  /**
   * @param wording how the fence's refusal names the unit ({@link Fences#wording}); null: derived from
   *     {@code unit}
   */
  public RangeTableMove(String id, String keyspace, String table, String keyColumn, KeyKind kind, MoveUnit unit,
                        String wording) {
    if (id == null || !id.matches("[a-z0-9_]{1,40}")) {
      throw new IllegalArgumentException("id: 1 to 40 of [a-z0-9_], got '" + id + "'");
    }
    this.id = id;
    this.keyspace = Objects.requireNonNull(keyspace, "keyspace");
    this.table = Objects.requireNonNull(table, "table");
    this.keyColumn = Objects.requireNonNull(keyColumn, "keyColumn");
    this.kind = Objects.requireNonNull(kind, "kind");
    this.unit = Objects.requireNonNull(unit, "unit");
    this.wording = wording != null ? wording : Fences.wording(unit, kind);
  }

  private static MoveUnit int64Range(Long lo, Long hi) {
    if (lo != null && hi != null && lo >= hi) {
      throw new IllegalArgumentException("range: start " + lo + " is not below end " + hi);
    }
    return new MoveUnit.Range(KeyRange.of(lo == null ? new byte[0] : Keys.encodeInt64(lo),
        hi == null ? new byte[0] : Keys.encodeInt64(hi), "range"));
  }

  /** A quoted SQL identifier (a table name may be schema-qualified: each part is quoted). */
  static String ident(String name) {
    StringBuilder b = new StringBuilder();
    for (String part : name.split("\\.", -1)) {
      if (b.length() > 0) {
        b.append('.');
      }
      b.append('"').append(part.replace("\"", "\"\"")).append('"');
    }
    return b.toString();
  }

  static String literal(String text) {
    return "'" + text.replace("'", "''") + "'";
  }

  /** The SQL condition "the key in {@code ref} lies in the unit", e.g. for NEW.id or a column. */
  String inRange(String ref) {
    return unit.contains(kind, ref);
  }

  /** The SQL condition "{@code ref} lies in [lo, hi)" (null: unbounded on that side). */
  static String inRange(String ref, Long lo, Long hi) {
    return io.shardmap.core.sql.KeySql.intRange(ref, lo, hi);
  }

  public String id() {
    return id;
  }

  public String keyspace() {
    return keyspace;
  }

  public String table() {
    return table;
  }

  public String keyColumn() {
    return keyColumn;
  }

  public KeyKind kind() {
    return kind;
  }

  public MoveUnit unit() {
    return unit;
  }

  /** How the fence's refusal names the unit, e.g. {@code hash bucket 3 of 8}. */
  public String wording() {
    return wording;
  }

  /** The unit as an INT64 range, or null when it is something else (fences store those by condition). */
  MoveUnit.Range int64Range() {
    return kind == KeyKind.INT64 && unit instanceof MoveUnit.Range r ? r : null;
  }

  private String changeLog() {
    return "shardmap." + ident("changes_" + id);
  }

  private String objectName(String kind) {
    // Trigger and function names per table: the table's name may be long or quoted, so hash it in.
    return kind + "_" + id + "_" + Integer.toHexString(table.hashCode());
  }

  /**
   * Source: creates the change log and the trigger that appends, in the writer's own transaction, the key
   * of every row written inside the unit (both keys when an UPDATE moves a row across its edge), and
   * refuses TRUNCATE of the table while the move runs (it would not be captured).
   */
  public void installCapture(Connection source) throws SQLException {
    installCapture(source, System::nanoTime);
  }

  /** As above; {@code ticker} times its DDL lock retries (the migrator passes its injected one). */
  public void installCapture(Connection source, LongSupplier ticker) throws SQLException {
    String k = ident(keyColumn);
    String fn = "shardmap." + ident(objectName("capture"));
    String truncFn = "shardmap." + ident(objectName("notruncate"));
    Fences.ensureSchema(source);
    ddl(source, ticker, s -> {
      s.execute("CREATE SCHEMA IF NOT EXISTS shardmap");
      s.execute("CREATE TABLE IF NOT EXISTS " + changeLog() + " (seq bigserial PRIMARY KEY, key " + kind.sqlType()
          + " NOT NULL)");
      s.execute("CREATE OR REPLACE FUNCTION " + fn + "() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
          + " IF TG_OP <> 'DELETE' AND " + inRange("NEW." + k) + " THEN"
          + "   INSERT INTO " + changeLog() + " (key) VALUES (NEW." + k + "); END IF;"
          + " IF TG_OP <> 'INSERT' AND " + inRange("OLD." + k)
          + "   AND (TG_OP = 'DELETE' OR OLD." + k + " IS DISTINCT FROM NEW." + k + ") THEN"
          + "   INSERT INTO " + changeLog() + " (key) VALUES (OLD." + k + "); END IF;"
          + " RETURN NULL; END $f$");
      s.execute("CREATE OR REPLACE FUNCTION " + truncFn + "() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
          + " RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = " + literal("shardmap: table " + table
              + " is being moved by migration " + id + "; TRUNCATE is refused until it ends") + "; END $f$");
      s.execute("DROP TRIGGER IF EXISTS " + ident(objectName("capture")) + " ON " + ident(table));
      s.execute("CREATE TRIGGER " + ident(objectName("capture")) + " AFTER INSERT OR UPDATE OR DELETE ON "
          + ident(table) + " FOR EACH ROW EXECUTE FUNCTION " + fn + "()");
      s.execute("DROP TRIGGER IF EXISTS " + ident(objectName("notruncate")) + " ON " + ident(table));
      s.execute("CREATE TRIGGER " + ident(objectName("notruncate")) + " BEFORE TRUNCATE ON " + ident(table)
          + " FOR EACH STATEMENT EXECUTE FUNCTION " + truncFn + "()");
    });
  }

  /** Source: removes the capture trigger and the change log (after cutover, or on cancel). */
  public void removeCapture(Connection source) throws SQLException {
    removeCapture(source, System::nanoTime);
  }

  /** As above; {@code ticker} times its DDL lock retries (the migrator passes its injected one). */
  public void removeCapture(Connection source, LongSupplier ticker) throws SQLException {
    removeCapture(List.of(this), source, ticker);
  }

  /**
   * Source: removes the capture of every table of a migration, then the change log they share, in one
   * transaction. Dropped table by table, the log went with the first table's triggers while the others'
   * still wrote to it: a write of the unit to one of those tables in between failed (after a cancel,
   * when the source takes the unit's writes again).
   */
  public static void removeCapture(List<RangeTableMove> moves, Connection source, LongSupplier ticker)
      throws SQLException {
    ddl(source, ticker, s -> {
      for (RangeTableMove m : moves) {
        s.execute("DROP TRIGGER IF EXISTS " + ident(m.objectName("capture")) + " ON " + ident(m.table));
        s.execute("DROP TRIGGER IF EXISTS " + ident(m.objectName("notruncate")) + " ON " + ident(m.table));
        s.execute("DROP FUNCTION IF EXISTS shardmap." + ident(m.objectName("capture")) + "()");
        s.execute("DROP FUNCTION IF EXISTS shardmap." + ident(m.objectName("notruncate")) + "()");
      }
      s.execute("DROP TABLE IF EXISTS " + moves.get(0).changeLog());
    });
  }

  /**
   * Copies every row of the unit from source to target through one binary COPY, streaming (nothing is
   * held in memory). The target must not hold rows of the unit yet ({@link #deleteBatch} clears them, as a
   * cancel does). Returns the rows copied. The migrator copies in chunks ({@link #copyChunk}); this
   * single-statement copy is what the copy benchmark compares them with.
   */
  public long copyRange(Connection source, Connection target) throws SQLException {
    CopyManager out = source.unwrap(PGConnection.class).getCopyAPI();
    try (PGCopyOutputStream in = new PGCopyOutputStream(target.unwrap(PGConnection.class),
        "COPY " + ident(table) + " (" + copyColumns(source) + ") FROM STDIN (FORMAT binary)")) {
      return out.copyOut("COPY (SELECT " + copyColumns(source) + " FROM " + ident(table) + " WHERE " + inRange(ident(keyColumn))
          + ") TO STDOUT (FORMAT binary)", in);
    } catch (IOException e) {
      throw new SQLException("copying " + table + " failed: " + e.getMessage(), "08000", e);
    }
  }

  /**
   * The columns COPY moves, in table order: all but generated ones, which each shard computes itself
   * and COPY FROM refuses values for. Read once from the source (the planner checked that the target's
   * columns, generated ones included, are the same).
   */
  private String copyColumns(Connection source) throws SQLException {
    String cols = copyColumns;
    if (cols == null) {
      List<Tables.Column> all = Tables.columns(source, table);
      if (all == null) {
        throw new SQLException("table " + table + " does not exist on the source", "42P01");
      }
      StringBuilder b = new StringBuilder();
      for (Tables.Column c : all) {
        if (!c.generated()) {
          b.append(b.length() == 0 ? "" : ", ").append(ident(c.name()));
        }
      }
      cols = b.toString();
      copyColumns = cols;
    }
    return cols;
  }

  /**
   * One round of catch-up of this table alone: {@link #replayRound(List, Connection, Connection, int)} of
   * a migration that moves one table.
   */
  public int replayRound(Connection source, Connection target, int limit) throws SQLException {
    return replayRound(List.of(this), source, target, limit);
  }

  /**
   * One round of catch-up of a migration's tables: takes up to {@code limit} logged keys off the source's
   * change log and makes the target's rows of each key equal to the source's current rows in every table of
   * {@code moves}, in one target transaction. The keys leave the log only once the target has committed, so
   * a crash at any point replays them again (harmless: replay copies the latest state). Keys whose writers
   * have not committed yet are not visible and come in a later round, so no cursor can skip them. Returns
   * the keys replayed.
   *
   * <p>Why every table for every key: the change log is the migration's, one for all its tables (its name
   * carries only the migration id), and a logged row says which key changed, not in which table. A replay
   * per table took the other tables' keys off the log with its own, and their writes were never copied
   * (a transfer's ledger row, logged under the account's key, lost with the account's update replayed).
   */
  public static int replayRound(List<RangeTableMove> moves, Connection source, Connection target, int limit)
      throws SQLException {
    RangeTableMove first = moves.get(0);
    boolean srcAuto = source.getAutoCommit();
    source.setAutoCommit(false);
    try {
      java.util.Map<String, byte[]> keys = new java.util.LinkedHashMap<>();
      try (PreparedStatement ps = source.prepareStatement("DELETE FROM " + first.changeLog() + " WHERE seq IN "
          + "(SELECT seq FROM " + first.changeLog() + " ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED) RETURNING key")) {
        ps.setInt(1, limit);
        try (ResultSet rs = ps.executeQuery()) {
          while (rs.next()) {
            byte[] key = first.kind.canonical(rs.getObject(1));
            keys.putIfAbsent(Keys.hex(key), key);
          }
        }
      }
      if (!keys.isEmpty()) {
        copyKeys(moves, source, target, new ArrayList<>(keys.values()));
      }
      source.commit();
      return keys.size();
    } catch (SQLException | RuntimeException e) {
      source.rollback();
      throw e;
    } finally {
      source.setAutoCommit(srcAuto);
    }
  }

  /** Keys waiting in the change log (the catch-up lag, in keys), which all tables of the migration share. */
  public long pendingKeys(Connection source) throws SQLException {
    try (Statement s = source.createStatement();
         ResultSet rs = s.executeQuery("SELECT count(*) FROM " + changeLog())) {
      rs.next();
      return rs.getLong(1);
    }
  }

  /**
   * Makes the target's rows for {@code keys} (canonical bytes) equal to the source's, in one target
   * transaction. Callers pass keys of the unit only: captured or found in a chunk of it.
   */
  public void copyKeys(Connection source, Connection target, List<byte[]> keys) throws SQLException {
    copyKeys(List.of(this), source, target, keys);
  }

  /** {@link #copyKeys(Connection, Connection, List)} in every table of {@code moves}, in one target transaction. */
  private static void copyKeys(List<RangeTableMove> moves, Connection source, Connection target, List<byte[]> keys)
      throws SQLException {
    List<byte[]> rows = new ArrayList<>(moves.size());
    for (RangeTableMove m : moves) {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      try {
        source.unwrap(PGConnection.class).getCopyAPI().copyOut("COPY (SELECT " + m.copyColumns(source) + " FROM "
            + ident(m.table) + " WHERE " + m.keysWhere(keys) + ") TO STDOUT (FORMAT binary)", out);
      } catch (IOException e) {
        throw new SQLException("reading keys of " + m.table + " failed: " + e.getMessage(), "08000", e);
      }
      rows.add(out.toByteArray());
    }
    inTransaction(target, s -> {
      Fences.passFence(s); // the target may still fence the unit: it moved away from there once
      for (int i = 0; i < moves.size(); i++) {
        RangeTableMove m = moves.get(i);
        s.executeUpdate("DELETE FROM " + ident(m.table) + " WHERE " + m.keysWhere(keys));
        try {
          target.unwrap(PGConnection.class).getCopyAPI().copyIn("COPY " + ident(m.table) + " (" + m.copyColumns(source)
              + ") FROM STDIN (FORMAT binary)", new java.io.ByteArrayInputStream(rows.get(i)));
        } catch (IOException e) {
          throw new SQLException("writing keys of " + m.table + " failed: " + e.getMessage(), "08000", e);
        }
      }
    });
  }

  private String keysWhere(List<byte[]> keys) {
    return new MoveUnit.Entries(keys).contains(kind, ident(keyColumn));
  }

  /** What verification found: chunks compared, chunks that differed, keys re-copied to repair them. */
  public record Verification(int chunks, int mismatched, long keysRepaired) {}

  /**
   * Compares the unit's rows on both sides chunk by chunk and repairs every chunk that differs (see
   * {@link #verifyChunk}).
   */
  public Verification verifyAndRepair(Connection source, Connection target, int chunkRows) throws SQLException {
    int chunks = 0;
    int mismatched = 0;
    long repaired = 0;
    byte[] after = null;
    while (true) {
      VerifiedChunk v = verifyChunk(source, target, after, chunkRows);
      chunks++;
      mismatched += v.mismatched() ? 1 : 0;
      repaired += v.keysRepaired();
      if (v.done()) {
        return new Verification(chunks, mismatched, repaired);
      }
      after = v.last();
    }
  }

  /**
   * One chunk of a copy or a verification: keys (after, last] of the key order, or to its end when done
   * (keys as canonical bytes).
   */
  public record CopiedChunk(long rows, long bytes, byte[] last, boolean done) {}

  /** One verified chunk: where it ended, whether it differed, keys repaired, and the source rows it compared. */
  public record VerifiedChunk(byte[] last, boolean done, boolean mismatched, long keysRepaired, long rows,
                              long replayed) {}

  /**
   * The last key of the chunk of {@code chunkRows} source rows after {@code after} (null: from the start),
   * or null when no more rows than that remain: then the chunk runs to the end. All rows of one key fall
   * in one chunk. Rows are counted in the key column's order within the unit's index bound (so a chunk of a
   * hash bucket scans {@code chunkRows} rows of the table, of which the bucket's are copied): the count
   * walks the index and evaluates no routing function.
   */
  private byte[] chunkEnd(Connection source, byte[] after, int chunkRows) throws SQLException {
    if (chunkRows < 1) {
      throw new IllegalArgumentException("chunkRows: must be at least 1, got " + chunkRows);
    }
    String k = ident(keyColumn);
    String bound = unit.indexBound(kind, k);
    String where = bound == null ? "true" : bound;
    try (PreparedStatement ps = source.prepareStatement("SELECT " + k + " FROM " + ident(table) + " WHERE "
        + where + (after == null ? "" : " AND " + k + " > " + kind.literal(after)) + " ORDER BY " + k
        + " OFFSET ? LIMIT 2")) {
      ps.setInt(1, chunkRows - 1);
      try (ResultSet rs = ps.executeQuery()) {
        // A chunk ending at the last row is the last chunk: it runs to the end.
        if (!rs.next()) {
          return null;
        }
        byte[] last = kind.canonical(rs.getObject(1));
        return rs.next() ? last : null;
      }
    }
  }

  private String chunkWhere(byte[] after, byte[] last) {
    String k = ident(keyColumn);
    return inRange(k) + (after == null ? "" : " AND " + k + " > " + kind.literal(after))
        + (last == null ? "" : " AND " + k + " <= " + kind.literal(last));
  }

  /**
   * Copies the next chunk (up to {@code chunkRows} source rows after {@code after}) with binary COPY,
   * streaming, in one target transaction that first deletes whatever the target holds of the chunk — so
   * a copy restarted from a persisted cursor that lags the target by a chunk converges. Capture must be
   * installed first: a row written on the source after this read is replayed by key later.
   */
  public CopiedChunk copyChunk(Connection source, Connection target, byte[] after, int chunkRows) throws SQLException {
    byte[] last = chunkEnd(source, after, chunkRows);
    String where = chunkWhere(after, last);
    long[] bytes = new long[1];
    long[] rows = new long[1];
    inTransaction(target, s -> {
      Fences.passFence(s); // the target may still fence the range: it moved away from there once
      s.executeUpdate("DELETE FROM " + ident(table) + " WHERE " + where);
      CopyManager out = source.unwrap(PGConnection.class).getCopyAPI();
      try (PGCopyOutputStream in = new PGCopyOutputStream(target.unwrap(PGConnection.class),
          "COPY " + ident(table) + " (" + copyColumns(source) + ") FROM STDIN (FORMAT binary)", 1 << 16);
           java.io.OutputStream counting = new java.io.FilterOutputStream(in) {
             @Override
             public void write(byte[] b, int off, int len) throws IOException {
               in.write(b, off, len);
               bytes[0] += len;
             }
           }) {
        rows[0] = out.copyOut("COPY (SELECT " + copyColumns(source) + " FROM " + ident(table) + " WHERE " + where + ") TO STDOUT (FORMAT binary)",
            counting);
      } catch (IOException e) {
        throw new SQLException("copying " + table + " failed: " + e.getMessage(), "08000", e);
      }
    });
    return new CopiedChunk(rows[0], bytes[0], last, last == null);
  }

  /**
   * Compares one chunk on both sides — summarized by PostgreSQL as (row count, sum of a 64-bit hash of each
   * row) per bucket of its keys ({@link #BUCKETS}), so at most that many small rows per side cross the
   * network — and, if any bucket differs, re-copies every key of the differing buckets whose rows' hashes
   * differ (keys only on the target are deleted). While writers run, a chunk can differ
   * because a logged key is not replayed yet; repairing it is harmless (replay by key converges).
   *
   * <p>The two sides are summarized at the same time, the source's on a thread of its own: each is a scan
   * of the chunk on its own server, so together they take as long as the slower one rather than the sum.
   * Every row of the chunk on both sides is hashed (see {@link #rowHash} for which hash).
   */
  public VerifiedChunk verifyChunk(Connection source, Connection target, byte[] after, int chunkRows) throws SQLException {
    return verifyChunk(source, target, after, chunkRows, () -> 0L);
  }

  /**
   * {@link #verifyChunk(Connection, Connection, byte[], int)}, running {@code catchUp} (a replay round; it
   * returns the keys it replayed, reported in {@link VerifiedChunk#replayed}) once the chunk's bounds are
   * known and right before both sides are summarized: a key written before the summaries' snapshots but
   * after the last replay makes the chunk differ, so the shorter that gap, the fewer chunks need the
   * per-key comparison.
   */
  public VerifiedChunk verifyChunk(Connection source, Connection target, byte[] after, int chunkRows,
                                   SqlCall<Long> catchUp) throws SQLException {
    byte[] last = chunkEnd(source, after, chunkRows);
    String where = chunkWhere(after, last);
    long replayed = catchUp.call();
    String hash = rowHash(source, target);
    // One pass per side: (row count, sum of row hashes) for each of BUCKETS buckets of the chunk's keys (by
    // a hash of the key), at most BUCKETS small rows over the network. A chunk differs when any bucket does.
    String bucket = "abs(hashtextextended(" + ident(keyColumn) + "::text, 0) % " + BUCKETS + ")";
    String summary = "SELECT " + bucket + ", count(*), sum(" + hash + ") FROM " + ident(table) + " t WHERE " + where
        + " GROUP BY 1";
    long repaired = 0;
    Both<java.util.Map<Integer, String>, java.util.Map<Integer, String>> sides =
        both(() -> buckets(source, summary), () -> buckets(target, summary));
    java.util.TreeSet<Integer> differing = new java.util.TreeSet<>();
    sides.first().forEach((b, sum) -> {
      if (!sum.equals(sides.second().get(b))) {
        differing.add(b);
      }
    });
    sides.second().keySet().stream().filter(b -> !sides.first().containsKey(b)).forEach(differing::add);
    boolean mismatched = !differing.isEmpty();
    if (mismatched) {
      // Find the keys that differ by their rows' hashes, in the differing buckets only (a small result per
      // side), and re-copy only those.
      StringBuilder in = new StringBuilder();
      differing.forEach(b -> in.append(in.length() == 0 ? "" : ", ").append(b));
      String perKey = "SELECT " + ident(keyColumn) + ", sum(" + hash + ") FROM " + ident(table)
          + " t WHERE " + where + " AND " + bucket + " IN (" + in + ") GROUP BY 1";
      java.util.Map<String, byte[]> keyOfA = new java.util.HashMap<>();
      java.util.Map<String, byte[]> keyOfB = new java.util.HashMap<>();
      Both<java.util.Map<String, Long>, java.util.Map<String, Long>> hashes =
          both(() -> keyHashes(source, perKey, keyOfA), () -> keyHashes(target, perKey, keyOfB));
      java.util.Map<String, Long> a = hashes.first();
      java.util.Map<String, Long> b = hashes.second();
      java.util.Map<String, byte[]> keyOf = new java.util.HashMap<>(keyOfB);
      keyOf.putAll(keyOfA);
      java.util.TreeSet<String> keys = new java.util.TreeSet<>();
      a.forEach((key, h) -> {
        if (!h.equals(b.get(key))) {
          keys.add(key);
        }
      });
      b.keySet().stream().filter(key -> !a.containsKey(key)).forEach(keys::add);
      if (!keys.isEmpty()) {
        copyKeys(source, target, keys.stream().map(keyOf::get).toList());
      }
      repaired = keys.size();
    }
    long rows = 0;
    for (String sum : sides.first().values()) {
      rows += Long.parseLong(sum.substring(0, sum.indexOf(':')));
    }
    return new VerifiedChunk(last, last == null, mismatched, repaired, rows, replayed);
  }

  /**
   * Column types whose hash function tells apart every two values that print differently: integers,
   * booleans, text and varchar (under a deterministic collation), bytea, dates, times, timestamps, uuids,
   * oids. For these a row's {@code hash_record_extended} is as strong a check as the hash of its text
   * (two rows whose columns hash alike print alike, up to hash collisions, which both forms share) and
   * about three times cheaper: it hashes each value as stored instead of printing the row first. Types
   * whose equality ignores a difference the text shows (numeric 1.0 and 1.00, float 0 and -0, interval
   * 1 day and 24 hours, json's whitespace, citext's case), types without a hash function, arrays and
   * composites are not listed: a table with any of them is hashed by its rows' text as before.
   */
  static final java.util.Set<String> EXACT_HASH_TYPES = java.util.Set.of("smallint", "integer", "bigint", "boolean",
      "text", "character varying", "bytea", "date", "time without time zone", "timestamp without time zone",
      "timestamp with time zone", "uuid", "oid");

  private volatile String rowHash;

  /**
   * The SQL expression that hashes a row {@code t} of the table to 64 bits for verification, the same on
   * both sides: {@code hash_record_extended(t, 0)} when every column on both sides is of a type in
   * {@link #EXACT_HASH_TYPES} with a deterministic collation, else {@code hashtextextended(t::text, 0)}.
   * Decided once per move from both servers' catalogs.
   */
  String rowHash(Connection source, Connection target) throws SQLException {
    String h = rowHash;
    if (h == null) {
      Both<Boolean, Boolean> exact = both(() -> exactlyHashable(source), () -> exactlyHashable(target));
      h = exact.first() && exact.second() ? "hash_record_extended(t, 0)" : "hashtextextended(t::text, 0)";
      rowHash = h;
    }
    return h;
  }

  private boolean exactlyHashable(Connection c) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("SELECT format_type(a.atttypid, NULL), coalesce(co.collisdeterministic, "
        + "true) FROM pg_attribute a LEFT JOIN pg_collation co ON co.oid = a.attcollation WHERE a.attrelid = "
        + "to_regclass(?) AND a.attnum > 0 AND NOT a.attisdropped")) {
      ps.setString(1, ident(table));
      try (ResultSet rs = ps.executeQuery()) {
        boolean any = false;
        while (rs.next()) {
          any = true;
          if (!EXACT_HASH_TYPES.contains(rs.getString(1)) || !rs.getBoolean(2)) {
            return false;
          }
        }
        return any;
      }
    }
  }

  /** The results of {@link #both}. */
  record Both<A, B>(A first, B second) {}

  /** Runs {@code a} on a thread of its own and {@code b} on this one; returns both results once both ended. */
  static <A, B> Both<A, B> both(SqlCall<A> a, SqlCall<B> b) throws SQLException {
    java.util.concurrent.CompletableFuture<A> first = new java.util.concurrent.CompletableFuture<>();
    Thread t = new Thread(() -> {
      try {
        first.complete(a.call());
      } catch (Throwable e) {
        first.completeExceptionally(e);
      }
    }, "shardmap-verify-source");
    t.setDaemon(true);
    t.start();
    B second;
    try {
      second = b.call();
    } finally {
      // Whatever happened here, the other side's connection is used again only after its query ended.
      boolean interrupted = false;
      while (true) {
        try {
          t.join();
          break;
        } catch (InterruptedException e) {
          interrupted = true;
        }
      }
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
    try {
      return new Both<>(first.join(), second);
    } catch (java.util.concurrent.CompletionException e) {
      Throwable cause = e.getCause();
      if (cause instanceof SQLException se) {
        throw se;
      }
      if (cause instanceof RuntimeException re) {
        throw re;
      }
      throw new IllegalStateException(cause);
    }
  }

  /** What one chunk of cleanup deleted: rows, and the key it ended at (null: it ran to the unit's end). */
  public record DeletedChunk(long rows, byte[] last, boolean done) {}

  /**
   * Deletes the next chunk of the unit's rows from {@code c} — the keys after {@code after} (null: from the
   * start) up to the {@code batchRows}-th row in key order, or to the end — in one short transaction,
   * passing the fence. A cursor moving along the key column's index: each chunk is one index range scan
   * and no chunk walks the index entries its predecessors left dead, which the batches of
   * {@link #deleteBatch} each walked again from the unit's start. Waits at most {@code lockWait} for a row
   * lock (null: without a bound); fails with SQLSTATE 55P03, having deleted nothing, when one stays locked
   * that long. The source's cleanup; after the cutover nobody writes the unit there, so a chunk's end is
   * not overtaken by new rows (and a chunk that runs to the end deletes whatever is there).
   */
  public DeletedChunk deleteChunk(Connection c, byte[] after, int batchRows, Duration lockWait) throws SQLException {
    byte[] last = chunkEnd(c, after, batchRows);
    String where = chunkWhere(after, last);
    long[] n = new long[1];
    inTransaction(c, s -> {
      if (lockWait != null) {
        s.execute("SET LOCAL lock_timeout = " + literal(Math.max(1, lockWait.toMillis()) + "ms"));
      }
      Fences.passFence(s);
      n[0] = s.executeUpdate("DELETE FROM " + ident(table) + " WHERE " + where);
    });
    return new DeletedChunk(n[0], last, last == null);
  }

  /**
   * Deletes up to {@code batchRows} rows of the unit from {@code c} in one short transaction, passing
   * the fence (the source's cleanup, or a cancelled move's target). Returns the rows deleted; 0 means none
   * is left.
   */
  public int deleteBatch(Connection c, int batchRows) throws SQLException {
    return deleteBatch(c, batchRows, null);
  }

  /**
   * {@link #deleteBatch(Connection, int)}, waiting at most {@code lockWait} for a row lock (null: without
   * a bound). Fails with SQLSTATE 55P03, having deleted nothing, when a row of the batch stays locked that
   * long: on the source after the cutover nobody writes the unit any more, but a transaction may still
   * hold a row lock of it, one prepared for two-phase commit until its coordinator or the resolver ends it.
   */
  public int deleteBatch(Connection c, int batchRows, Duration lockWait) throws SQLException {
    int[] n = new int[1];
    inTransaction(c, s -> {
      if (lockWait != null) {
        s.execute("SET LOCAL lock_timeout = " + literal(Math.max(1, lockWait.toMillis()) + "ms"));
      }
      Fences.passFence(s);
      n[0] = s.executeUpdate("DELETE FROM " + ident(table) + " WHERE ctid = ANY(ARRAY(SELECT ctid FROM "
          + ident(table) + " WHERE " + inRange(ident(keyColumn)) + " LIMIT " + batchRows + "))");
    });
    return n[0];
  }

  private static final java.util.regex.Pattern PLAN_ROWS = java.util.regex.Pattern.compile("\"Plan Rows\"\\s*:\\s*(\\d+)");

  /**
   * PostgreSQL's planner estimate of the unit's rows on {@code c} ({@code EXPLAIN}: no row is read, so it
   * costs nothing on a big table; only as good as the table's statistics). A bucket or an arc is the
   * table's estimate times its share of the hash space: the planner cannot see into the hash.
   */
  public long estimateRange(Connection c) throws SQLException {
    double share = unit.hashShare();
    String where = unit.needsRouting() ? "true" : inRange(ident(keyColumn));
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("EXPLAIN (FORMAT JSON) SELECT 1 FROM "
        + ident(table) + " WHERE " + where)) {
      java.util.regex.Matcher m = rs.next() ? PLAN_ROWS.matcher(rs.getString(1)) : null;
      if (m == null || !m.find()) {
        throw new SQLException("EXPLAIN of " + table + " gave no row estimate", "XX000");
      }
      return Math.round(Long.parseLong(m.group(1)) * share);
    }
  }

  /**
   * Buckets a verified chunk's keys are summarized in: a differing chunk's per-key comparison then reads the
   * hashes of the keys of its differing buckets only (usually one of 64), not of all its keys.
   */
  static final int BUCKETS = 64;

  /** Bucket → "count:sum of row hashes" of a chunk's summary query. */
  private static java.util.Map<Integer, String> buckets(Connection c, String sql) throws SQLException {
    java.util.Map<Integer, String> out = new java.util.HashMap<>();
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
      while (rs.next()) {
        out.put(rs.getInt(1), rs.getLong(2) + ":" + rs.getString(3));
      }
    }
    return out;
  }

  /** Key (hex of its canonical bytes) → the sum of its rows' hashes; records each key's bytes in keyOf. */
  private java.util.Map<String, Long> keyHashes(Connection c, String sql, java.util.Map<String, byte[]> keyOf)
      throws SQLException {
    java.util.Map<String, Long> out = new java.util.HashMap<>();
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
      while (rs.next()) {
        byte[] key = kind.canonical(rs.getObject(1));
        String hex = Keys.hex(key);
        keyOf.put(hex, key);
        out.put(hex, rs.getBigDecimal(2).longValue());
      }
    }
    return out;
  }

  /**
   * Source: fences the unit in this table alone (see {@link Fences#fence}, which fences every table of a
   * migration in one transaction). Returns false, having changed nothing, when the lock did not come
   * within {@code budget}.
   */
  public boolean fence(Connection source, long fencedEpoch, Duration budget) throws SQLException {
    return Fences.fence(source, List.of(this), fencedEpoch, budget);
  }

  /** How long one DDL attempt on a live table may wait for its lock (writers queue behind the request). */
  static final Duration DDL_LOCK_WAIT = Duration.ofMillis(200);
  /** How long DDL keeps retrying before it fails naming the cause. */
  static final Duration DDL_GIVE_UP = Duration.ofMinutes(5);
  /**
   * Pauses between DDL attempts: 50 ms doubling to 2 s, jittered, so that migrations waiting for locks on
   * one shard do not queue their lock requests (and the writers behind them) in step.
   */
  static final Backoff DDL_RETRY = Backoff.exponential(Duration.ofMillis(50), Duration.ofSeconds(2));

  /**
   * Runs DDL on a table that takes traffic. A DDL lock request queues every later writer behind it, so
   * one that waits for a long transaction would stop all writes: each attempt waits at most
   * {@link #DDL_LOCK_WAIT}, then gives way and retries after a pause.
   */
  static void ddl(Connection c, LongSupplier ticker, SqlBody body) throws SQLException {
    long deadline = ticker.getAsLong() + DDL_GIVE_UP.toNanos();
    Backoff.Attempts pauses = DDL_RETRY.start();
    while (true) {
      try {
        inTransaction(c, s -> {
          s.execute("SET LOCAL lock_timeout = " + literal(DDL_LOCK_WAIT.toMillis() + "ms"));
          body.run(s);
        });
        return;
      } catch (SQLException e) {
        if (!"55P03".equals(e.getSQLState()) || ticker.getAsLong() - deadline > 0) {
          throw e;
        }
      }
      try {
        TimeUnit.NANOSECONDS.sleep(pauses.nextPauseNanos());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new SQLException("interrupted while waiting for a table lock", "57014", e);
      }
    }
  }

  /**
   * Runs {@code body} while holding a session-level advisory lock named after a catalog object, on an
   * autocommit connection. Two concurrent {@code CREATE ... IF NOT EXISTS} of one name (two migrations
   * preparing on one shard at once) can both miss it, and one then fails on a catalog unique index. Why a
   * session lock and transactions inside it rather than one transaction behind a transaction-level lock: a
   * transaction keeps its cached catalog lookups (a negative "no such table" included) until it next
   * locks a relation, so after waiting it could still miss what the other one created; a transaction
   * begun after the wait reads the catalog afresh.
   */
  static <T> T serialized(Connection c, String object, SqlCall<T> body) throws SQLException {
    String key = literal("shardmap.ddl." + object);
    try (Statement s = c.createStatement()) {
      s.execute("SELECT pg_advisory_lock(hashtextextended(" + key + ", 0))");
    }
    try {
      return body.call();
    } finally {
      try (Statement s = c.createStatement()) {
        s.execute("SELECT pg_advisory_unlock(hashtextextended(" + key + ", 0))");
      }
    }
  }

  /** A call that may fail with an SQLException. */
  public interface SqlCall<T> {
    T call() throws SQLException;
  }

  interface SqlBody {
    void run(Statement s) throws SQLException;
  }

  static void inTransaction(Connection c, SqlBody body) throws SQLException {
    boolean auto = c.getAutoCommit();
    c.setAutoCommit(false);
    try (Statement s = c.createStatement()) {
      body.run(s);
      c.commit();
    } catch (SQLException | RuntimeException e) {
      c.rollback();
      throw e;
    } finally {
      c.setAutoCommit(auto);
    }
  }
}
