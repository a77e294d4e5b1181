package io.shardmap.core;

import static io.shardmap.core.TestData.assertError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.shardmap.proto.v1.GeoLayout;
import io.shardmap.proto.v1.RegionAssignment;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class GeoTableTest {

  private static GeoLayout.Builder layout() {
    return GeoLayout.newBuilder()
        .addRegions(RegionAssignment.newBuilder().setRegion("eu-west").setShard("eu1").setEpoch(2))
        .addRegions(RegionAssignment.newBuilder().setRegion("us-east").setShard("us1").setEpoch(3))
        .setDefaultRegion("us-east");
  }

  @Test
  void routesByRegionAndUnknownRegionsToTheDefault() {
    GeoTable g = GeoTable.of(layout().build(), 8);
    assertEquals(new Route("eu1", 2, null, 8), g.route("eu-west"));
    assertEquals(new Route("us1", 3, null, 8), g.route("us-east"));
    assertEquals(g.route("us-east"), g.route("ap-south"), "an unknown region routes like the default region");
    assertEquals(g.route("eu-west"), g.route("eu-west".getBytes(StandardCharsets.UTF_8)), "byte key is UTF-8 name");
    assertEquals(2, g.regions().size());
    assertThrows(UnsupportedOperationException.class, () -> g.regions().put("x", g.route("x")),
        "regions() must not let callers change the table");
  }

  @Test
  void defaultRegionMustBeListed() {
    assertError(ErrorCode.INVALID_ARGUMENT, () -> GeoTable.of(layout().setDefaultRegion("mars").build(), 1),
        "default_region:", "mars");
    assertError(ErrorCode.INVALID_ARGUMENT, () -> GeoTable.of(layout().clearDefaultRegion().build(), 1),
        "default_region:");
  }

  @Test
  void duplicateRegionsAreRejected() {
    GeoLayout dup = layout().addRegions(RegionAssignment.newBuilder().setRegion("eu-west").setShard("eu2")).build();
    assertError(ErrorCode.INVALID_ARGUMENT, () -> GeoTable.of(dup, 1), "regions:", "eu-west", "twice");
  }
}
