package io.shardmap.store;

import java.nio.charset.StandardCharsets;
import java.util.Comparator;

/**
 * etcd orders keys by their bytes, unsigned. For UTF-8 that is the same as ordering by Unicode code
 * point, which differs from {@link String#compareTo} (UTF-16 units) once characters above U+FFFF meet
 * characters in U+E000..U+FFFF. Both stores sort with this so domain code sees one order.
 */
final class KeyOrder {

  static final Comparator<String> CODE_POINT = KeyOrder::compare;

  private KeyOrder() {}

  static int compare(String a, String b) {
    int i = 0;
    int j = 0;
    while (i < a.length() && j < b.length()) {
      int ca = a.codePointAt(i);
      int cb = b.codePointAt(j);
      if (ca != cb) {
        return Integer.compare(ca, cb);
      }
      i += Character.charCount(ca);
      j += Character.charCount(cb);
    }
    return Integer.compare(a.length() - i, b.length() - j);
  }

  static int utf8Length(String s) {
    return s.getBytes(StandardCharsets.UTF_8).length;
  }
}
