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
  /** Region names in unsigned UTF-8 byte order: unit i is the region sorted[i]. */
  private final byte[][] sorted;
  private final Map<String, Integer> unitOfRegion;
  private final int defaultUnit;

  private GeoTable(Map<String, Route> regions, Route defaultRoute, GeoLayout layout) {
    this.regions = regions;
    this.defaultRoute = defaultRoute;
    this.layout = layout;
    this.sorted = regions.keySet().stream().map(r -> r.getBytes(StandardCharsets.UTF_8))
        .sorted(Keys::compare).toArray(byte[][]::new);
    Map<String, Integer> units = new HashMap<>();
    for (int i = 0; i < sorted.length; i++) {
      units.put(new String(sorted[i], StandardCharsets.UTF_8), i);
    }
    this.unitOfRegion = Map.copyOf(units);
    this.defaultUnit = units.get(layout.getDefaultRegion());
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

  /**
   * Units are the regions, at their names' UTF-8 bytes; a key naming no region counts towards the default
   * region, which routes it.
   */
  @Override
  public int unitCount() {
    return sorted.length;
  }

  @Override
  public int unitOf(byte[] canonicalKey) {
    Integer u = unitOfRegion.get(new String(canonicalKey, StandardCharsets.UTF_8));
    return u != null ? u : defaultUnit;
  }

  @Override
  public Route unitRoute(int unit) {
    return regions.get(new String(sorted[unit], StandardCharsets.UTF_8));
  }

  @Override
  public byte[] unitStart(int unit) {
    return sorted[unit].clone();
  }

  /** Just past the region's name: the unit holds that name only. */
  @Override
  public byte[] unitEnd(int unit) {
    return java.util.Arrays.copyOf(sorted[unit], sorted[unit].length + 1);
  }

  @Override
  public String describeUnit(int unit) {
    return "region " + new String(sorted[unit], StandardCharsets.UTF_8);
  }

  public Map<String, Route> regions() {
    return regions;
  }

  @Override
  public void addOwners(java.util.Set<String> out) {
    regions.values().forEach(r -> out.add(r.shard()));
  }
}
