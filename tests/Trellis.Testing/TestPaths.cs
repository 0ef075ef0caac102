namespace Trellis.Testing;
/// <summary>Common test fakes live here.</summary>
public static class TestPaths { public static string NewTempDir() { var d = Path.Combine(Path.GetTempPath(), "trellis-test-" + Guid.NewGuid().ToString("N")[..12]); Directory.CreateDirectory(d); return d; } }
