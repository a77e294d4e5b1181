package io.shardmap.examples;

import io.shardmap.client.internal.ClientStats;

/** PLANT (to be removed in the next commit): an example reaching into the SDK's internals. */
final class PlantedReach {
  private PlantedReach() {}

  static Class<?> reach() {
    return ClientStats.class;
  }
}
