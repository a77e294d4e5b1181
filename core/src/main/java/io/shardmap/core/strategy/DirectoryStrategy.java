package io.shardmap.core.strategy;

import com.google.protobuf.InvalidProtocolBufferException;
import io.shardmap.core.DirectoryTable;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.RoutingTable;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.KeyKind;
import io.shardmap.core.sql.KeySql;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.DirectoryLayout;
import io.shardmap.proto.v1.GetMapResponse;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.Strategy;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * STRATEGY_DIRECTORY: one etcd record per key (an entry), and a layout record with the optional fallback
 * shard that owns every key without an entry.
 */
final class DirectoryStrategy implements StrategyKind {
  @Override
  public Strategy strategy() {
    return Strategy.STRATEGY_DIRECTORY;
  }

  @Override
  public String label() {
    return "directory";
  }

  @Override
  public String unitNoun() {
    return "directory entries";
  }

  @Override
  public MapChange.ChangeCase layoutCase() {
    return MapChange.ChangeCase.DIRECTORY;
  }

  @Override
  public Class<? extends RoutingTable> tableType() {
    return DirectoryTable.class;
  }

  @Override
  public RoutingTable withLayout(RoutingTable previous, MapChange change, long revision) {
    // The entries are records of their own: a new fallback keeps them.
    return previous instanceof DirectoryTable d ? d.withLayout(change.getDirectory(), revision)
        : DirectoryTable.empty(change.getDirectory(), revision);
  }

  @Override
  public void decodeLayout(byte[] record, MapChange.Builder into) throws InvalidProtocolBufferException {
    into.setDirectory(DirectoryLayout.parseFrom(record));
  }

  @Override
  public boolean copyLayout(GetMapResponse map, MapChange.Builder into) {
    into.setDirectory(map.getDirectory());
    return true;
  }

  @Override
  public long page(KeyspaceMap k, GetMapResponse.Builder out, long offset, int pageSize, boolean skipEntries) {
    DirectoryTable d = k.directory();
    out.setDirectory(d.layout()).setEntryCount(d.size());
    if (skipEntries) {
      return 0;
    }
    for (Map.Entry<byte[], Route> e : d.page(offset, pageSize)) {
      out.addEntries(DirectoryEntry.newBuilder().setKey(Keys.toProto(k.keyType(), e.getKey()))
          .setShard(e.getValue().shard()).setEpoch(e.getValue().epoch()));
    }
    return d.size();
  }

  @Override
  public boolean loadsLazily() {
    return true;
  }

  @Override
  public List<String> describeUnits(KeyspaceMap k) {
    DirectoryTable d = held(k);
    List<String> out = new ArrayList<>();
    Route f = d.fallback();
    out.add("fallback -> " + (f == null ? "(none)" : f.shard() + " (epoch " + f.epoch() + ")"));
    for (Map.Entry<byte[], Route> e : d.page(0, Integer.MAX_VALUE)) {
      out.add(Keys.describe(k.keyType(), e.getKey()) + " -> " + e.getValue().shard() + " (epoch "
          + e.getValue().epoch() + ")");
    }
    return out;
  }

  @Override
  public Map<String, String> summary(KeyspaceMap k) {
    DirectoryLayout l = k.directory().layout();
    return Map.of("fallback", l.getFallbackShard().isEmpty() ? "-"
        : l.getFallbackShard() + " (epoch " + l.getFallbackEpoch() + ")");
  }

  @Override
  public long layoutEntries(KeyspaceMap k) {
    return k.directory().size();
  }

  @Override
  public SortedMap<String, Share> shares(KeyspaceMap k) {
    SortedMap<String, Share> out = new TreeMap<>();
    DirectoryTable d = k.directory();
    if (d.size() > 0) {
      double f = 1.0 / d.size();
      d.forEach((key, r) -> out.merge(r.shard(), new Share(f, 1), (a, b) -> a.plus(f)));
    }
    return out;
  }

  @Override
  public String ownedBy(KeyspaceMap k, String shard, KeyKind column, String ref) {
    DirectoryTable d = held(k);
    List<byte[]> mine = new ArrayList<>();
    List<byte[]> others = new ArrayList<>();
    d.forEach((key, r) -> (r.shard().equals(shard) ? mine : others).add(key));
    if (d.fallback() != null && d.fallback().shard().equals(shard)) {
      // The fallback's owner owns every key but the entries of other shards.
      return KeySql.notIn(column, ref, others);
    }
    return KeySql.in(column, ref, mine);
  }

  private static DirectoryTable held(KeyspaceMap k) {
    DirectoryTable d = k.directory();
    if (!d.entriesHeld()) {
      throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "keyspace '" + k.name() + "': this copy "
          + "of the directory holds only its layout, not its entries, so it cannot say which keys a shard owns");
    }
    return d;
  }
}
