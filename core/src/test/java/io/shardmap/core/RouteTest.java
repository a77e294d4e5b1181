package io.shardmap.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class RouteTest {

  @Test
  void routesAreValuesOfTheirFourComponents() {
    KeyRange r = KeyRange.parse(io.shardmap.proto.v1.KeyType.KEY_TYPE_INT64, "0..10", "range");
    assertEquals(new Route("s1", 2, r, 7), new Route("s1", 2, r, 7));
    assertEquals(new Route("s1", 2, r, 7).hashCode(), new Route("s1", 2, r, 7).hashCode());
    assertNotEquals(new Route("s1", 2, r, 7), new Route("s1", 3, r, 7));
    assertNotEquals(new Route("s1", 2, r, 7), new Route("s1", 2, null, 7));
    assertSame(new Route(new String("s1"), 1, null, 0).shard(), "s1", "shard names are interned");
  }

  @Test
  void aDerivedValueIsMadeOnceAndKept() {
    Route route = new Route("s1", 1, null, 0);
    AtomicInteger made = new AtomicInteger();
    assertNull(route.derived(StringBuilder.class));
    StringBuilder first = route.derived(StringBuilder.class, x -> {
      made.incrementAndGet();
      return new StringBuilder(x.shard());
    });
    assertSame(first, route.derived(StringBuilder.class, x -> new StringBuilder("other")));
    assertSame(first, route.derived(StringBuilder.class));
    assertEquals(1, made.get());
    // Another type is computed but not kept: the slot holds the first type's value.
    assertEquals("s1!", route.derived(String.class, x -> x.shard() + "!"));
    assertNull(route.derived(String.class));
  }
}
