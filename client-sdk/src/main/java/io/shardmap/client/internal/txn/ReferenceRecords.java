package io.shardmap.client.internal.txn;

import io.shardmap.client.internal.Counters;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.ListReferenceTablesResponse;
import io.shardmap.proto.v1.ReferenceTable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;

/**
 * The SDK's copy of the reference table records, per keyspace: an immutable snapshot read from a directory
 * server ({@code ListReferenceTables}, a quorum read) and replaced whole, never in place, so a reader takes
 * no lock and always sees one consistent answer. Read the first time a keyspace's reference table is
 * written, again when a table is not in it (declared since), and again when a copy refuses a write for a
 * stale epoch ({@link #refresh}). A stale snapshot is never a correctness problem: the copies' guard refuses
 * a write declared with an epoch they no longer have (docs/reference-sdk.md).
 */
public final class ReferenceRecords {
  /** One keyspace's records as read at {@code revision}, by canonical name. */
  private record Snapshot(long revision, Map<String, ReferenceTable> byName) {}

  private final ConcurrentHashMap<String, Snapshot> byKeyspace = new ConcurrentHashMap<>();
  private final Function<String, ListReferenceTablesResponse> fetch;
  private final Counters stats;

  /** {@code fetch}: asks a directory server for a keyspace's records (ShardmapException when it cannot). */
  public ReferenceRecords(Function<String, ListReferenceTablesResponse> fetch, Counters stats) {
    this.fetch = fetch;
    this.stats = stats;
  }

  /**
   * The record of {@code table} (any form {@link ReferenceNames} matches) among those of {@code keyspace}:
   * from the snapshot, else read again once.
   *
   * @throws ShardmapException NOT_FOUND naming the table and keyspace when no record matches, or for an
   *     unknown keyspace; INVALID_ARGUMENT for a malformed name or an ambiguous unqualified one
   */
  public ReferenceTable record(String keyspace, String table) {
    Snapshot s = byKeyspace.get(keyspace);
    if (s != null) {
      ReferenceTable t = s.byName().get(table); // the canonical name, as most callers give it
      if (t == null) {
        t = match(s, keyspace, table, false);
      }
      if (t != null) {
        return t;
      }
    } else {
      ReferenceNames.parse("table", table); // a malformed name costs no round trip
    }
    return match(read(keyspace), keyspace, table, true);
  }

  /**
   * Whether the query planner's table {@code schema.table} or {@code table} (identifiers already folded: the
   * exact names, no quotes) is a reference table of {@code keyspace}, by the snapshot (read once if there is
   * none yet). A table declared since the snapshot is missed until {@link #reload}.
   */
  public boolean isReference(String keyspace, String folded) {
    Snapshot s = byKeyspace.get(keyspace);
    if (s == null) {
      s = read(keyspace);
    }
    int dot = folded.indexOf('.');
    String name = dot < 0 ? quoted(folded) : quoted(folded.substring(0, dot)) + "." + quoted(folded.substring(dot + 1));
    try {
      return match(s, keyspace, name, false) != null;
    } catch (ShardmapException e) {
      return false; // ambiguous or malformed: the planner refuses the table, naming it
    }
  }

  /** The revision of {@code keyspace}'s snapshot, 0 when none was read. */
  public long revision(String keyspace) {
    Snapshot s = byKeyspace.get(keyspace);
    return s == null ? 0 : s.revision();
  }

  /** Reads {@code keyspace}'s records again. */
  public void reload(String keyspace) {
    read(keyspace);
  }

  private static String quoted(String identifier) {
    return identifier.matches("[a-z_][a-z0-9_$]*") ? identifier : "\"" + identifier.replace("\"", "\"\"") + "\"";
  }

  /** Reads {@code keyspace}'s records again and returns the record named {@code canonical}, or null. */
  public ReferenceTable refresh(String keyspace, String canonical) {
    return read(keyspace).byName().get(canonical);
  }

  private Snapshot read(String keyspace) {
    stats.referenceFetch();
    ListReferenceTablesResponse r = fetch.apply(keyspace);
    Map<String, ReferenceTable> byName = new LinkedHashMap<>();
    for (ReferenceTable t : r.getTablesList()) {
      byName.put(t.getTable(), t);
    }
    Snapshot fresh = new Snapshot(r.getRevision(), Map.copyOf(byName));
    // Keep the newer of two answers that raced: an older one must not replace what a later read saw.
    return byKeyspace.merge(keyspace, fresh, (old, now) -> now.revision() >= old.revision() ? now : old);
  }

  private static ReferenceTable match(Snapshot s, String keyspace, String table, boolean required) {
    ReferenceNames.Parsed given = ReferenceNames.parse("table", table);
    List<ReferenceTable> found = new ArrayList<>();
    for (ReferenceTable t : s.byName().values()) {
      if (ReferenceNames.sameTable(given, ReferenceNames.parse("table", t.getTable()))) {
        found.add(t);
      }
    }
    if (found.size() > 1) {
      List<String> names = found.stream().map(ReferenceTable::getTable).sorted().toList();
      throw ShardmapException.invalid("table", "'" + table + "' names more than one reference table of keyspace '"
          + keyspace + "' (" + String.join(", ", names) + "): qualify it with its schema");
    }
    if (found.isEmpty()) {
      if (!required) {
        return null;
      }
      throw new ShardmapException(ErrorCode.NOT_FOUND, "table: '" + table + "' is not a reference table of "
          + "keyspace '" + keyspace + "' (its reference tables: " + new java.util.TreeSet<>(s.byName().keySet())
          + "); declare it with shardmap-migrator reference add");
    }
    return found.get(0);
  }
}
