package io.shardmap.core.strategy;

import com.google.protobuf.InvalidProtocolBufferException;
import io.shardmap.core.GeoTable;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.RoutingTable;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.sql.KeyKind;
import io.shardmap.core.sql.KeySql;
import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.GetMapResponse;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RegionAssignment;
import io.shardmap.proto.v1.Strategy;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * STRATEGY_GEOGRAPHIC: the key is a region name (UTF-8 bytes); listed regions route to their shard and
 * every other name routes like the default region. One layout record.
 */
final class GeoStrategy implements StrategyKind {
  @Override
  public Strategy strategy() {
    return Strategy.STRATEGY_GEOGRAPHIC;
  }

  @Override
  public String label() {
    return "geographic";
  }

  @Override
  public String unitNoun() {
    return "regions";
  }

  @Override
  public MapChange.ChangeCase layoutCase() {
    return MapChange.ChangeCase.GEO;
  }

  @Override
  public Class<? extends RoutingTable> tableType() {
    return GeoTable.class;
  }

  @Override
  public RoutingTable withLayout(RoutingTable previous, MapChange change, long revision) {
    return GeoTable.of(change.getGeo(), revision);
  }

  @Override
  public void decodeLayout(byte[] record, MapChange.Builder into) throws InvalidProtocolBufferException {
    into.setGeo(GeoLayout.parseFrom(record));
  }

  @Override
  public boolean copyLayout(GetMapResponse map, MapChange.Builder into) {
    into.setGeo(map.getGeo());
    return true;
  }

  @Override
  public long page(KeyspaceMap k, GetMapResponse.Builder out, long offset, int pageSize, boolean skipEntries) {
    out.setGeo(k.geo().layout());
    return 0;
  }

  @Override
  public void validate(KeyspaceSpec spec, KeyspaceSpec.Builder out) {
    if (spec.getKeyType() == KeyType.KEY_TYPE_INT64) {
      throw ShardmapException.invalid("spec.key_type", "a geographic keyspace's keys are region names: "
          + "use KEY_TYPE_BYTES (or leave it unset)");
    }
    out.setKeyType(KeyType.KEY_TYPE_BYTES);
    if (spec.getDefaultVnodes() != 0) {
      throw ShardmapException.invalid("spec.default_vnodes", "only applies to STRATEGY_CONSISTENT_HASH");
    }
  }

  @Override
  public List<String> describeUnits(KeyspaceMap k) {
    GeoLayout g = k.geo().layout();
    List<String> out = new ArrayList<>();
    for (RegionAssignment r : g.getRegionsList()) {
      out.add(r.getRegion() + (r.getRegion().equals(g.getDefaultRegion()) ? " (default)" : "") + " -> "
          + r.getShard() + " (epoch " + r.getEpoch() + ")");
    }
    return out;
  }

  @Override
  public java.util.Map<String, String> summary(KeyspaceMap k) {
    String d = k.geo().layout().getDefaultRegion();
    return java.util.Map.of("default", d.isEmpty() ? "-" : d);
  }

  @Override
  public long layoutEntries(KeyspaceMap k) {
    return k.geo().regions().size();
  }

  @Override
  public SortedMap<String, Share> shares(KeyspaceMap k) {
    SortedMap<String, Share> out = new TreeMap<>();
    GeoTable g = k.geo();
    double f = 1.0 / g.regions().size();
    for (Route r : g.regions().values()) {
      out.merge(r.shard(), new Share(f, 1), (a, b) -> a.plus(f));
    }
    return out;
  }

  @Override
  public String ownedBy(KeyspaceMap k, String shard, KeyKind column, String ref) {
    GeoLayout g = k.geo().layout();
    List<byte[]> mine = new ArrayList<>();
    List<byte[]> others = new ArrayList<>();
    boolean ownsDefault = false;
    for (RegionAssignment r : g.getRegionsList()) {
      boolean m = r.getShard().equals(shard);
      (m ? mine : others).add(r.getRegion().getBytes(StandardCharsets.UTF_8));
      ownsDefault |= m && r.getRegion().equals(g.getDefaultRegion());
    }
    // The default region's owner also owns every unlisted name: all but the other shards' regions.
    return ownsDefault ? KeySql.notIn(column, ref, others) : KeySql.in(column, ref, mine);
  }
}
