package io.aforo.sdk;

import io.aforo.sdk.servlet.AforoMeteringFilter;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.time.Duration;
import org.apache.catalina.Context;
import org.apache.catalina.LifecycleException;
import org.apache.catalina.startup.Tomcat;
import org.apache.tomcat.util.descriptor.web.FilterDef;
import org.apache.tomcat.util.descriptor.web.FilterMap;

/** The instrumented app of the end-to-end tests: a real embedded Tomcat 10 with the filter in front of a servlet. */
final class TestApp implements AutoCloseable {
    private final Tomcat tomcat = new Tomcat();
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    final int port;

    TestApp(AforoMeteringFilter filter) throws LifecycleException, IOException {
        tomcat.setBaseDir(Files.createTempDirectory("aforo-tomcat").toString());
        tomcat.setPort(0);
        tomcat.getConnector(); // creates the default connector
        Context ctx = tomcat.addContext("", null);
        Tomcat.addServlet(ctx, "app", new HttpServlet() {
            @Override
            protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                if (req.getRequestURI().endsWith("/fail")) {
                    resp.setStatus(500);
                    return;
                }
                resp.setContentType("text/plain");
                resp.getWriter().write("ok");
            }
        });
        ctx.addServletMappingDecoded("/*", "app", false);
        FilterDef def = new FilterDef();
        def.setFilterName("aforo");
        def.setFilter(filter);
        ctx.addFilterDef(def);
        FilterMap map = new FilterMap();
        map.setFilterName("aforo");
        map.addURLPattern("/*");
        ctx.addFilterMap(map);
        tomcat.start();
        port = tomcat.getConnector().getLocalPort();
    }

    /** GET path with the API key; returns the status. */
    int get(String path, String apiKey) throws IOException, InterruptedException {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(30));
        if (apiKey != null) b.header("X-Api-Key", apiKey);
        return http.send(b.build(), HttpResponse.BodyHandlers.discarding()).statusCode();
    }

    @Override
    public void close() throws LifecycleException {
        tomcat.stop();
        tomcat.destroy();
    }
}
