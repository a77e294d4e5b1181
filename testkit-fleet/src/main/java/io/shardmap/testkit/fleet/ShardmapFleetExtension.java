package io.shardmap.testkit.fleet;

import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * A {@link ShardmapFleet} as a JUnit 5 extension, for {@code @RegisterExtension}: on an instance field each
 * test gets a fleet of its own, on a static field the class shares one. Made by
 * {@link ShardmapFleet.Builder#extension()}.
 */
public final class ShardmapFleetExtension
    implements BeforeAllCallback, AfterAllCallback, BeforeEachCallback, AfterEachCallback {
  private final ShardmapFleet.Builder spec;
  private ShardmapFleet fleet;
  private boolean perClass;

  ShardmapFleetExtension(ShardmapFleet.Builder spec) {
    this.spec = spec;
  }

  /** The running fleet; only between the extension's before and after callbacks. */
  public ShardmapFleet get() {
    if (fleet == null) {
      throw new IllegalStateException("the fleet runs only while a test of its class runs");
    }
    return fleet;
  }

  @Override
  public void beforeAll(ExtensionContext context) throws Exception {
    // Called only when the extension is registered on a static field.
    perClass = true;
    fleet = spec.build();
  }

  @Override
  public void beforeEach(ExtensionContext context) throws Exception {
    if (!perClass) {
      fleet = spec.build();
    }
  }

  @Override
  public void afterEach(ExtensionContext context) throws Exception {
    if (!perClass) {
      close();
    }
  }

  @Override
  public void afterAll(ExtensionContext context) throws Exception {
    close();
  }

  private void close() throws Exception {
    ShardmapFleet f = fleet;
    fleet = null;
    if (f != null) {
      f.close();
    }
  }
}
