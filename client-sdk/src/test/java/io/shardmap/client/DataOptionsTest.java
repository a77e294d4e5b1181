package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.function.Supplier;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The pool settings of {@link DataOptions}: defaults, and bad values refused naming the option. */
@Tag("unit")
class DataOptionsTest {

  private static void refused(String option, Supplier<?> build) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, build::get);
    assertTrue(e.getMessage().startsWith(option + ":"), e.getMessage());
  }

  @Test
  void defaults() {
    DataOptions o = DataOptions.builder().user("app").build();
    assertEquals(10, o.maxPoolSize());
    assertEquals(0, o.minIdle());
    assertEquals(Duration.ofMinutes(10), o.idleTimeout());
    assertEquals(Duration.ofMinutes(30), o.maxLifetime());
    assertEquals(Duration.ZERO, o.keepaliveTime());
    assertEquals(Duration.ofSeconds(5), o.validationTimeout());
    assertNull(o.connectionInitSql());
  }

  @Test
  void crossShardQueriesHaveAPoolSizeOfTheirOwn() {
    assertEquals(4, DataOptions.builder().user("app").build().queryPoolSize());
    assertEquals(2, DataOptions.builder().user("app").queryPoolSize(2).build().queryPoolSize());
    refused("queryPoolSize", () -> DataOptions.builder().user("app").queryPoolSize(0));
    refused("queryPoolSize", () -> DataOptions.builder().user("app").queryPoolSize(10_001));
  }

  @Test
  void theFailoverBufferIsBoundedAndCanBeTurnedOff() {
    DataOptions d = DataOptions.builder().user("app").build();
    assertEquals(Duration.ofSeconds(10), d.failoverBufferWindow());
    assertEquals(1000, d.failoverBufferSize());
    assertEquals(Duration.ofMillis(100), d.failoverProbeInterval());
    DataOptions o = DataOptions.builder().user("app").failoverBufferWindow(Duration.ZERO).failoverBufferSize(5)
        .failoverProbeInterval(Duration.ofMillis(20)).build();
    assertEquals(Duration.ZERO, o.failoverBufferWindow());
    assertEquals(5, o.failoverBufferSize());
    assertEquals(Duration.ofMillis(20), o.failoverProbeInterval());
    refused("failoverBufferWindow", () -> DataOptions.builder().failoverBufferWindow(Duration.ofMillis(50)));
    refused("failoverBufferWindow", () -> DataOptions.builder().failoverBufferWindow(Duration.ofSeconds(-1)));
    refused("failoverBufferWindow", () -> DataOptions.builder().failoverBufferWindow(null));
    refused("failoverBufferSize", () -> DataOptions.builder().failoverBufferSize(0));
    refused("failoverBufferSize", () -> DataOptions.builder().failoverBufferSize(100_001));
    refused("failoverProbeInterval", () -> DataOptions.builder().failoverProbeInterval(Duration.ofMillis(5)));
  }

  @Test
  void poolSettingsAreKept() {
    DataOptions o = DataOptions.builder().user("app").idleTimeout(Duration.ZERO).maxLifetime(Duration.ofMinutes(5))
        .keepaliveTime(Duration.ofMinutes(1)).validationTimeout(Duration.ofSeconds(1))
        .connectionInitSql("SET search_path TO app").property("socketTimeout", "30").build();
    assertEquals(Duration.ZERO, o.idleTimeout());
    assertEquals(Duration.ofMinutes(5), o.maxLifetime());
    assertEquals(Duration.ofMinutes(1), o.keepaliveTime());
    assertEquals(Duration.ofSeconds(1), o.validationTimeout());
    assertEquals("SET search_path TO app", o.connectionInitSql());
    assertEquals("30", o.properties().get("socketTimeout"));
  }

  @Test
  void badValuesNameTheOption() {
    refused("idleTimeout", () -> DataOptions.builder().idleTimeout(Duration.ofSeconds(5)));
    refused("maxLifetime", () -> DataOptions.builder().maxLifetime(Duration.ofSeconds(10)));
    refused("keepaliveTime", () -> DataOptions.builder().keepaliveTime(Duration.ofSeconds(1)));
    refused("validationTimeout", () -> DataOptions.builder().validationTimeout(Duration.ofMillis(10)));
    refused("connectionInitSql", () -> DataOptions.builder().connectionInitSql(" "));
    refused("keepaliveTime", () -> DataOptions.builder().user("app").maxLifetime(Duration.ofMinutes(1))
        .keepaliveTime(Duration.ofMinutes(2)).build());
    refused("minIdle", () -> DataOptions.builder().user("app").maxPoolSize(2).minIdle(3).build());
  }

  @Test
  void replicaLagBoundAndCheckInterval() {
    DataOptions d = DataOptions.builder().user("app").build();
    assertEquals(Duration.ofSeconds(5), d.maxReplicaLag());
    assertEquals(Duration.ofMillis(500), d.replicaCheckInterval());
    DataOptions o = DataOptions.builder().user("app").maxReplicaLag(Duration.ofMillis(1))
        .replicaCheckInterval(Duration.ofMillis(50)).build();
    assertEquals(Duration.ofMillis(1), o.maxReplicaLag());
    assertEquals(Duration.ofMillis(50), o.replicaCheckInterval());
    refused("maxReplicaLag", () -> DataOptions.builder().maxReplicaLag(Duration.ZERO));
    refused("maxReplicaLag", () -> DataOptions.builder().maxReplicaLag(Duration.ofSeconds(-1)));
    refused("maxReplicaLag", () -> DataOptions.builder().maxReplicaLag(null));
    refused("replicaCheckInterval", () -> DataOptions.builder().replicaCheckInterval(Duration.ofMillis(49)));
    refused("replicaCheckInterval", () -> DataOptions.builder().replicaCheckInterval(Duration.ZERO));
    refused("replicaCheckInterval", () -> DataOptions.builder().replicaCheckInterval(null));
    IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
        () -> DataOptions.builder().maxReplicaLag(Duration.ZERO));
    assertTrue(e.getMessage().contains("more than zero") && e.getMessage().contains("primary"), e.getMessage());
  }
}
