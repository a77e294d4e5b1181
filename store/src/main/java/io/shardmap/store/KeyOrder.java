package io.shardmap.store;

import io.shardmap.core.CodePointOrder;
import java.nio.charset.StandardCharsets;
import java.util.Comparator;

/**
 * etcd orders keys by their bytes, unsigned. For UTF-8 that is the same as ordering by Unicode code
 * point ({@link CodePointOrder}). Both stores sort with this so domain code sees one order.
 */
final class KeyOrder {

  static final Comparator<String> CODE_POINT = CodePointOrder::compare;

  private KeyOrder() {}

  static int utf8Length(String s) {
    return s.getBytes(StandardCharsets.UTF_8).length;
  }
}
