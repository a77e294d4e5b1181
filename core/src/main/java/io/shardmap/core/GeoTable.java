package io.shardmap.core;

import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.RegionAssignment;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

/** STRATEGY_GEOGRAPHIC: the key is a region name; unknown regions route like the default region. */
public final class GeoTable implements RoutingTable {
  private final Map<String, Route> regions;
  private final Route defaultRoute;
  private final GeoLayout layout;

  private GeoTable(Map<String, Route> regions, Route defaultRoute, GeoLayout layout) {
    this.regions = regions;
    this.defaultRoute = defaultRoute;
    this.layout = layout;
  }

  public static GeoTable of(GeoLayout layout, long modRevision) {
    Map<String, Route> m = new HashMap<>();
    for (RegionAssignment r : layout.getRegionsList()) {
      if (m.put(r.getRegion(), new Route(r.getShard(), r.getEpoch(), null, modRevision)) != null) {
        throw ShardmapException.invalid("regions", "region '" + r.getRegion() + "' is listed twice");
      }
    }
    Route def = m.get(layout.getDefaultRegion());
    if (def == null) {
      throw ShardmapException.invalid("default_region", "the default region '" + layout.getDefaultRegion()
          + "' must be one of the regions");
    }
    return new GeoTable(Map.copyOf(m), def, layout);
  }

  public GeoLayout layout() {
    return layout;
  }

  public Route route(String region) {
    Route r = regions.get(region);
    return r != null ? r : defaultRoute;
  }

  public Route route(byte[] canonicalKey) {
    return route(new String(canonicalKey, StandardCharsets.UTF_8));
  }

  public Map<String, Route> regions() {
    return regions;
  }

  @Override
  public void addOwners(java.util.Set<String> out) {
    regions.values().forEach(r -> out.add(r.shard()));
  }
}
