package io.shardmap.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.shardmap.proto.v1.FleetServiceGrpc;
import io.shardmap.proto.v1.GetFleetStatusRequest;
import io.shardmap.proto.v1.GetFleetStatusResponse;
import io.shardmap.proto.v1.GetHeatmapRequest;
import io.shardmap.proto.v1.GetHeatmapResponse;
import io.shardmap.proto.v1.HeatmapRow;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.KeyspaceStatus;
import io.shardmap.proto.v1.ListKeyspacesRequest;
import io.shardmap.proto.v1.ListKeyspacesResponse;
import io.shardmap.proto.v1.MigrationPhase;
import io.shardmap.proto.v1.MoveStatus;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import io.shardmap.proto.v1.ShardStatus;
import io.shardmap.proto.v1.Suggestion;
import io.shardmap.proto.v1.UnitStatus;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicReference;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.openqa.selenium.By;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.Rectangle;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;

/**
 * The fleet page in a real browser (Debian's headless chromium through its chromium-driver), on services that
 * answer known data: the heatmap paints the hot unit hot and the cold ones cold, where the page says its
 * cells are, and the shards, hottest units, suggestions and moves are there. The screenshot is kept in
 * target/fleet-page.png for a person to look at.
 */
@Tag("integration")
class FleetPageBrowserTest {
  static final Path CHROMIUM = Path.of("/usr/bin/chromium");
  static final Path CHROMEDRIVER = Path.of("/usr/bin/chromedriver");
  private static final int ROWS = 12;
  private static final int COLUMNS = 30;
  private static final int HOT_ROW = 7;
  private static final long NOW = 1_765_000_000_000L;

  private HttpServer http;
  private ChromeDriver browser;
  private final AtomicReference<GetHeatmapRequest> lastHeatmap = new AtomicReference<>();

  /** Row i: 1 call/s in every column; the hot row 600 calls/s in the last 10 columns. */
  static GetHeatmapResponse heatmap() {
    GetHeatmapResponse.Builder b = GetHeatmapResponse.newBuilder().setKeyspace("users").setGeneratedUnixMs(NOW);
    for (int j = 0; j < COLUMNS; j++) {
      b.addColumnStartUnixMs(NOW - (COLUMNS - j) * 60_000L).addColumnMs(60_000);
    }
    for (int i = 0; i < ROWS; i++) {
      HeatmapRow.Builder r = HeatmapRow.newBuilder().setLabel("[" + i * 1000 + ", " + (i + 1) * 1000 + ")")
          .setUnits(1).setShard("s" + (1 + i % 3));
      for (int j = 0; j < COLUMNS; j++) {
        boolean hot = i == HOT_ROW && j >= COLUMNS - 10;
        r.addReads(hot ? 12_000 : 30).addWrites(hot ? 24_000 : 30).addBusyMicros(hot ? 30_000_000 : 60_000);
      }
      b.addRows(r);
    }
    return b.build();
  }

  static GetFleetStatusResponse status() {
    KeyspaceStatus.Builder ks = KeyspaceStatus.newBuilder().setKeyspace("users").setUnits(ROWS)
        .setLoadSkew(1.71).setSizeSkew(0.12).setSizesUnixMs(NOW - 30_000).setReadsPerSecond(210)
        .setWritesPerSecond(412);
    for (int s = 1; s <= 3; s++) {
      ks.addShards(ShardStatus.newBuilder().setShard("s" + s).setUnits(4).setRows(100_000L * s)
          .setBytes(12_000_000L * s).setReadsPerSecond(s == 2 ? 200 : 5).setWritesPerSecond(s == 2 ? 400 : 6)
          .setBusy(s == 2 ? 0.5 : 0.01));
    }
    ks.addHottest(UnitStatus.newBuilder().setLabel("[7000, 8000)").setShard("s2").setReadsPerSecond(200)
        .setWritesPerSecond(400).setLoadShare(0.96).setRows(5000));
    ks.addSuggestions(Suggestion.newBuilder().setKind(Suggestion.Kind.KIND_SPLIT_AND_MOVE).setLabel("[7000, 8000)")
        .setSource("s2").setTarget("s1").setText("split range [7000, 8000) at 7420 and move [7420, 8000) to s1"));
    return GetFleetStatusResponse.newBuilder().addKeyspaces(ks).setGeneratedUnixMs(NOW)
        .addMoves(MoveStatus.newBuilder().setId("m_hot_1").setKeyspace("users").setUnit("[3000, 4000)")
            .setSource("s1").setTarget("s3").setPhase(MigrationPhase.MIGRATION_PHASE_COPYING).setRowsCopied(40_000)
            .setRowsEstimate(100_000).setRowsPerSecond(250_000).setEtaMs(4_200))
        .build();
  }

  @BeforeEach
  void start() throws IOException {
    FleetServiceGrpc.FleetServiceImplBase fleet = new FleetServiceGrpc.FleetServiceImplBase() {
      @Override
      public void getHeatmap(GetHeatmapRequest req, StreamObserver<GetHeatmapResponse> out) {
        lastHeatmap.set(req);
        if (!req.getKeyspace().equals("users")) {
          out.onError(Status.NOT_FOUND.withDescription("keyspace: no keyspace '" + req.getKeyspace() + "'")
              .asRuntimeException());
          return;
        }
        out.onNext(heatmap());
        out.onCompleted();
      }

      @Override
      public void getFleetStatus(GetFleetStatusRequest req, StreamObserver<GetFleetStatusResponse> out) {
        out.onNext(status());
        out.onCompleted();
      }
    };
    ShardMapServiceGrpc.ShardMapServiceImplBase read = new ShardMapServiceGrpc.ShardMapServiceImplBase() {
      @Override
      public void listKeyspaces(ListKeyspacesRequest req, StreamObserver<ListKeyspacesResponse> out) {
        out.onNext(ListKeyspacesResponse.newBuilder().addKeyspaces(KeyspaceSpec.newBuilder().setName("accounts"))
            .addKeyspaces(KeyspaceSpec.newBuilder().setName("users")).build());
        out.onCompleted();
      }
    };
    http = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 16);
    new FleetPage(fleet, read).mount(http);
    http.setExecutor(Executors.newFixedThreadPool(2));
    http.start();
  }

  @AfterEach
  void stop() {
    if (browser != null) {
      browser.quit();
    }
    if (http != null) {
      http.stop(0);
    }
  }

  /** Headless chromium as root (no sandbox), a fixed window so the layout is the same on every machine. */
  static ChromeDriver browser() {
    assertTrue(Files.isExecutable(CHROMIUM) && Files.isExecutable(CHROMEDRIVER),
        "the browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; "
            + ".ci/run installs them)");
    ChromeOptions options = new ChromeOptions().setBinary(CHROMIUM.toFile())
        .addArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1500,1000", "--force-device-scale-factor=1", "--hide-scrollbars");
    ChromeDriverService service = new ChromeDriverService.Builder().usingDriverExecutable(CHROMEDRIVER.toFile())
        .usingAnyFreePort().build();
    return new ChromeDriver(service, options);
  }

  /** Waits until the page finished {@code loads} refreshes (the page counts them on body[data-loaded]). */
  static void awaitLoaded(ChromeDriver browser, int loads) {
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    while (true) {
      String n = browser.findElement(By.tagName("body")).getDomAttribute("data-loaded");
      if (n != null && Integer.parseInt(n) >= loads) {
        return;
      }
      assertTrue(System.nanoTime() < deadline, "the page did not finish " + loads + " refreshes in 30 s");
      try {
        Thread.sleep(100);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AssertionError(e);
      }
    }
  }

  /** The screenshot's colour at the centre of heatmap cell (row, column), from the canvas's own geometry. */
  static int[] cellColour(BufferedImage shot, WebElement canvas, int row, int column) {
    Rectangle r = canvas.getRect();
    double scale = r.getWidth() / Double.parseDouble(canvas.getDomAttribute("width"));
    double x = Double.parseDouble(canvas.getDomAttribute("data-plot-left"))
        + (column + 0.5) * Double.parseDouble(canvas.getDomAttribute("data-cell-width"));
    double y = Double.parseDouble(canvas.getDomAttribute("data-plot-top"))
        + (row + 0.5) * Double.parseDouble(canvas.getDomAttribute("data-row-height"));
    int rgb = shot.getRGB((int) Math.round(r.getX() + x * scale), (int) Math.round(r.getY() + y * scale));
    return new int[] {(rgb >> 16) & 0xff, (rgb >> 8) & 0xff, rgb & 0xff};
  }

  /** Hot on the page's ramp: red high, blue low (yellow and orange are hot; blues and the grey are not). */
  static boolean hot(int[] c) {
    return c[0] > 200 && c[2] < 120;
  }

  static boolean cold(int[] c) {
    return c[0] < 140 || (c[0] > 220 && c[1] > 220 && c[2] > 220);
  }

  static BufferedImage screenshot(ChromeDriver browser, String name) throws IOException {
    byte[] png = browser.getScreenshotAs(OutputType.BYTES);
    Path out = Path.of("target", name);
    Files.createDirectories(out.getParent());
    Files.write(out, png);
    return ImageIO.read(new ByteArrayInputStream(png));
  }

  @Test
  void heatmapShowsTheHotUnitAndThePageListsShardsHotUnitsSuggestionsAndMoves() throws IOException {
    browser = browser();
    browser.get("http://127.0.0.1:" + http.getAddress().getPort() + "/fleet?keyspace=users&window=3600");
    awaitLoaded(browser, 1);

    assertEquals("Shardmap fleet", browser.getTitle());
    assertEquals("users", browser.findElement(By.id("keyspace")).getDomProperty("value"));
    assertEquals(3600, lastHeatmap.get().getWindowSeconds(), "the window in the address is what the page asks for");
    WebElement canvas = browser.findElement(By.id("heatmap"));
    assertEquals(String.valueOf(ROWS), canvas.getDomAttribute("data-rows"));
    assertEquals(String.valueOf(COLUMNS), canvas.getDomAttribute("data-columns"));

    List<WebElement> shards = browser.findElements(By.cssSelector("#shards tbody tr"));
    assertEquals(3, shards.size());
    assertTrue(shards.get(1).getText().startsWith("s2"), shards.get(1).getText());
    assertTrue(browser.findElement(By.id("skew")).getText().contains("load 1.71"));
    assertTrue(browser.findElement(By.cssSelector("#hottest tbody tr")).getText().contains("[7000, 8000)"));
    assertTrue(browser.findElement(By.id("suggestions")).getText()
        .contains("split range [7000, 8000) at 7420 and move [7420, 8000) to s1"));
    String move = browser.findElement(By.cssSelector("#moves tbody tr")).getText();
    assertTrue(move.contains("m_hot_1") && move.contains("s1 → s3") && move.contains("copying")
        && move.contains("40%") && move.contains("4 s"), move);

    BufferedImage shot = screenshot(browser, "fleet-page.png");
    for (int j = COLUMNS - 10; j < COLUMNS; j++) {
      int[] c = cellColour(shot, canvas, HOT_ROW, j);
      assertTrue(hot(c), "hot cell (" + HOT_ROW + ", " + j + ") painted " + java.util.Arrays.toString(c));
    }
    for (int i = 0; i < ROWS; i++) {
      int[] early = cellColour(shot, canvas, i, 3);
      assertTrue(cold(early), "cell (" + i + ", 3) painted " + java.util.Arrays.toString(early));
      if (i != HOT_ROW) {
        int[] late = cellColour(shot, canvas, i, COLUMNS - 1);
        assertTrue(cold(late), "cell (" + i + ", last) painted " + java.util.Arrays.toString(late));
      }
    }
  }

  @Test
  void anUnknownKeyspaceIsSaidOnThePageAndByTheEndpoint() throws IOException {
    browser = browser();
    int port = http.getAddress().getPort();
    browser.get("http://127.0.0.1:" + port + "/api/v1/heatmap?keyspace=nope");
    assertTrue(browser.findElement(By.tagName("body")).getText().contains("NOT_FOUND"));
    browser.get("http://127.0.0.1:" + port + "/api/v1/heatmap?keyspace=users&window=abc");
    assertTrue(browser.findElement(By.tagName("body")).getText().contains("window: must be a whole number"));
  }
}
