package io.shardmap.migrator.internal;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.Records;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.core.ShardmapException;
import io.shardmap.migrator.MoveSpec;
import io.shardmap.proto.v1.DirectoryEntriesUnit;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.Migration;
import io.shardmap.proto.v1.MigrationUnit;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.Compare;
import io.shardmap.store.KeyValue;
import io.shardmap.store.Txn;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Explicit entries of a directory keyspace, all of one owner. Each entry record belongs to its key alone
 * and the admin API refuses to change a marked one, so the cutover compares each at its planned revision.
 */
final class EntriesMove extends UnitKindBase {
  EntriesMove() {
    super(Strategy.STRATEGY_DIRECTORY, MigrationUnit.KindCase.ENTRIES, "entries", "directory entries", false);
  }

  @Override
  public boolean requested(MoveSpec spec) {
    return spec.entries() != null;
  }

  @Override
  public Proposal propose(PlanContext ctx, MoveSpec spec, KeyspaceSpec ks) {
    CatalogPaths paths = ctx.paths();
    KeyType type = ks.getKeyType();
    List<byte[]> parsed = new ArrayList<>();
    List<Compare> compares = new ArrayList<>();
    List<String> markers = new ArrayList<>();
    DirectoryEntriesUnit.Builder unit = DirectoryEntriesUnit.newBuilder();
    Map<String, Integer> seen = new HashMap<>();
    String source = null;
    long epoch = 0;
    for (int i = 0; i < spec.entries().size(); i++) {
      String field = "entries[" + i + "]";
      byte[] key = KeyRange.parseKey(type, spec.entries().get(i), field);
      Integer dup = seen.put(Keys.hex(key), i);
      if (dup != null) {
        throw ShardmapException.invalid(field, "the same key as entries[" + dup + "]");
      }
      KeyValue kv = ctx.one(paths.entry(ks.getName(), key));
      if (kv == null) {
        throw ShardmapException.notFound(field + ": key " + Keys.describe(type, key) + " has no entry in keyspace '"
            + ks.getName() + "' (keys routed by the fallback do not move one by one: give them entries first)");
      }
      DirectoryEntry e = Records.decode(kv, DirectoryEntry.parser());
      if (source == null) {
        source = e.getShard();
      } else if (!source.equals(e.getShard())) {
        throw ShardmapException.precondition(field + ": key " + Keys.describe(type, key) + " is owned by '"
            + e.getShard() + "', entries[0] by '" + source + "'; one migration moves the entries of one shard");
      }
      KeyValue marker = ctx.one(paths.movingEntry(ks.getName(), key));
      if (marker != null) {
        throw ShardmapException.precondition(field + ": key " + Keys.describe(type, key) + " of keyspace '"
            + ks.getName() + "' is already being moved by migration '" + marker.valueUtf8() + "'");
      }
      epoch = Math.max(epoch, e.getEpoch());
      parsed.add(key);
      compares.add(Compare.modRevision(kv.key(), kv.modRevision()));
      markers.add(paths.movingEntry(ks.getName(), key));
      unit.addKeys(Keys.toProto(type, key)).addModRevisions(kv.modRevision());
    }
    ctx.requireShard("target", spec.target());
    if (source.equals(spec.target())) {
      throw ShardmapException.precondition("target: shard '" + spec.target() + "' already owns these entries of "
          + "keyspace '" + ks.getName() + "'");
    }
    return new Proposal(source, spec.target(), epoch, 0, null, MigrationUnit.newBuilder().setEntries(unit).build(),
        compares, markers, parsed);
  }

  /** The canonical keys of a migration of directory entries. */
  static List<byte[]> keys(Migration m) {
    List<byte[]> out = new ArrayList<>();
    int i = 0;
    for (Key k : m.getUnit().getEntries().getKeysList()) {
      out.add(Keys.canonical(m.getKeyType(), k, "entries[" + i++ + "]"));
    }
    return out;
  }

  @Override
  public List<String> markers(CatalogPaths paths, Migration m) {
    return keys(m).stream().map(k -> paths.movingEntry(m.getKeyspace(), k)).toList();
  }

  @Override
  public String handOver(CutoverContext ctx, Migration m, Txn.Builder txn) {
    ctx.edits().directory().handOverEntries(txn, m.getKeyspace(), m.getKeyType(), keys(m),
        m.getUnit().getEntries().getModRevisionsList(), m.getTarget(), m.getRangeEpoch() + 1);
    return null;
  }

  @Override
  public MoveUnit unit(Migration m) {
    return new MoveUnit.Entries(keys(m));
  }

  @Override
  public String describe(Migration m) {
    return new MoveUnit.Entries(keys(m)).describe(m.getKeyType());
  }

  @Override
  public String name(Migration m) {
    return describe(m).replaceFirst("^(\\d+) (entr)", "$1 directory $2");
  }
}
