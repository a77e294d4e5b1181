package io.shardmap.client.plant;

import io.shardmap.server.internal.Errors;

/**
 * A deliberate violation, in the client SDK's package space but compiled only into the architecture
 * tests: the client layer using the directory server's internals. {@code ArchitectureTest} checks that
 * both rules report it, so a rule that matches nothing cannot pass unnoticed.
 */
public final class PlantedReach {
  private PlantedReach() {}

  public static Class<?> reach() {
    return Errors.class;
  }
}
