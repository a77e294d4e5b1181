package io.shardmap.core.strategy;

import com.google.protobuf.InvalidProtocolBufferException;
import io.shardmap.core.HashTable;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.RoutingTable;
import io.shardmap.core.Route;
import io.shardmap.core.sql.KeyKind;
import io.shardmap.core.sql.KeySql;
import io.shardmap.proto.v1.GetMapResponse;
import io.shardmap.proto.v1.HashLayout;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.Strategy;
import java.util.ArrayList;
import java.util.List;
import java.util.SortedMap;
import java.util.TreeMap;

/** STRATEGY_HASH: xxHash64(key) mod N buckets, each assigned to a shard, in one layout record. */
final class HashStrategy implements StrategyKind {
  @Override
  public Strategy strategy() {
    return Strategy.STRATEGY_HASH;
  }

  @Override
  public String label() {
    return "hash";
  }

  @Override
  public String unitNoun() {
    return "buckets";
  }

  @Override
  public MapChange.ChangeCase layoutCase() {
    return MapChange.ChangeCase.HASH;
  }

  @Override
  public Class<? extends RoutingTable> tableType() {
    return HashTable.class;
  }

  @Override
  public RoutingTable withLayout(RoutingTable previous, MapChange change, long revision) {
    return HashTable.of(change.getHash(), revision);
  }

  @Override
  public void decodeLayout(byte[] record, MapChange.Builder into) throws InvalidProtocolBufferException {
    into.setHash(HashLayout.parseFrom(record));
  }

  @Override
  public boolean copyLayout(GetMapResponse map, MapChange.Builder into) {
    into.setHash(map.getHash());
    return true;
  }

  @Override
  public long page(KeyspaceMap k, GetMapResponse.Builder out, long offset, int pageSize, boolean skipEntries) {
    out.setHash(k.hash().layout());
    return 0;
  }

  @Override
  public List<String> describeUnits(KeyspaceMap k) {
    List<String> out = new ArrayList<>();
    HashTable t = k.hash();
    for (int i = 0; i < t.size(); i++) {
      Route r = t.bucket(i);
      out.add("bucket " + i + " -> " + r.shard() + " (epoch " + r.epoch() + ")");
    }
    return out;
  }

  @Override
  public long layoutEntries(KeyspaceMap k) {
    return k.hash().size();
  }

  @Override
  public SortedMap<String, Share> shares(KeyspaceMap k) {
    SortedMap<String, Share> out = new TreeMap<>();
    HashTable t = k.hash();
    double f = 1.0 / t.size();
    for (int i = 0; i < t.size(); i++) {
      out.merge(t.bucket(i).shard(), new Share(f, 1), (a, b) -> a.plus(f));
    }
    return out;
  }

  @Override
  public String ownedBy(KeyspaceMap k, String shard, KeyKind column, String ref) {
    HashTable t = k.hash();
    List<Integer> mine = new ArrayList<>();
    for (int i = 0; i < t.size(); i++) {
      if (t.bucket(i).shard().equals(shard)) {
        mine.add(i);
      }
    }
    return KeySql.buckets(column, ref, mine, t.size());
  }
}
